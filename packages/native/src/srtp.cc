// SRTP/SRTCP protection; see srtp.h.
#include "srtp.h"

#include <openssl/crypto.h>
#include <string.h>

#include "rtp.h"

namespace atrium {

// ---------------------------------------------------------------------------
// Replay and rollover

int ReplayWindow::check(uint64_t index) const {
  if (!started || index > highest) return 0;
  uint64_t d = highest - index;
  if (d >= (uint64_t)BITS) return 1;
  return (bits[d / 64] >> (d % 64)) & 1 ? 1 : 0;
}

void ReplayWindow::accept(uint64_t index) {
  if (!started) {
    started = true;
    highest = index;
    memset(bits, 0, sizeof bits);
    bits[0] = 1;
    return;
  }
  if (index > highest) {
    uint64_t shift = index - highest;
    if (shift >= (uint64_t)BITS) {
      memset(bits, 0, sizeof bits);
    } else {
      // shift the bitmap left by `shift` (bit d = index highest - d)
      const int words = BITS / 64;
      int ws = (int)(shift / 64);
      int bs = (int)(shift % 64);
      for (int i = words - 1; i >= 0; i--) {
        uint64_t v = 0;
        int src = i - ws;
        if (src >= 0) {
          v = bits[src] << bs;
          if (bs && src - 1 >= 0) v |= bits[src - 1] >> (64 - bs);
        }
        bits[i] = v;
      }
    }
    highest = index;
    bits[0] |= 1;
  } else {
    uint64_t d = highest - index;
    if (d < (uint64_t)BITS) bits[d / 64] |= (uint64_t)1 << (d % 64);
  }
}

uint64_t InboundState::estimate(uint16_t seq, uint32_t* roc_out) const {
  uint32_t v = roc;
  if (started) {
    if (s_l < 32768) {
      if ((int)seq - (int)s_l > 32768 && roc > 0) v = roc - 1;
    } else if ((int)s_l - 32768 > (int)seq) {
      v = roc + 1;
    }
  }
  *roc_out = v;
  return ((uint64_t)v << 16) | seq;
}

void InboundState::accept(uint16_t seq, uint32_t r) {
  if (!started) {
    started = true;
    roc = r;
    s_l = seq;
  } else if (r > roc || (r == roc && seq_diff(seq, s_l) > 0 && seq > s_l)) {
    roc = r;
    s_l = seq;
  }
  window.accept(((uint64_t)r << 16) | seq);
}

uint32_t OutboundState::roc_for(uint16_t seq) {
  if (!started) {
    started = true;
    last = seq;
    return roc;
  }
  uint32_t v = roc;
  if (last < 0x8000) {
    if ((int)seq - (int)last > 0x8000 && roc > 0) v = roc - 1;
  } else if ((int)last - 0x8000 > (int)seq) {
    v = roc + 1;
  }
  if (v == roc + 1 || (v == roc && seq > last)) {
    roc = v;
    last = seq;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Key derivation

bool derive_key(const uint8_t* master_key, const uint8_t* master_salt, size_t salt_len, uint8_t label, uint8_t* out, size_t out_len) {
  if (salt_len > 14 || out_len > 32) return false;
  uint8_t x[16] = {};
  memcpy(x, master_salt, salt_len);  // a 12-byte (GCM) salt is padded with zeros to 14
  x[7] ^= label;
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) return false;
  bool ok = false;
  uint8_t block[32];
  int n1 = 0;
  int n2 = 0;
  uint8_t zero[32] = {};
  // AES-CM keystream from IV x (the last two bytes are the block counter)
  if (EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, master_key, x) == 1 && EVP_EncryptUpdate(c, block, &n1, zero, (int)out_len) == 1 &&
      EVP_EncryptFinal_ex(c, block + n1, &n2) == 1) {
    memcpy(out, block, out_len);
    ok = true;
  }
  EVP_CIPHER_CTX_free(c);
  OPENSSL_cleanse(block, sizeof block);
  return ok;
}

// ---------------------------------------------------------------------------
// Direction

static void free_ctx(EVP_CIPHER_CTX*& c) {
  if (c) EVP_CIPHER_CTX_free(c);
  c = nullptr;
}
static void free_md(EVP_MD_CTX*& c) {
  if (c) EVP_MD_CTX_free(c);
  c = nullptr;
}

Direction::~Direction() {
  free_ctx(rtp_enc_);
  free_ctx(rtp_dec_);
  free_ctx(rtcp_enc_);
  free_ctx(rtcp_dec_);
  free_md(rtp_inner_);
  free_md(rtp_outer_);
  free_md(rtcp_inner_);
  free_md(rtcp_outer_);
  free_md(work_);
}

static EVP_CIPHER_CTX* make_cipher(bool gcm, bool encrypt, const uint8_t* key) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) return nullptr;
  const EVP_CIPHER* type = gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr();
  int ok = encrypt ? EVP_EncryptInit_ex(c, type, nullptr, nullptr, nullptr) : EVP_DecryptInit_ex(c, type, nullptr, nullptr, nullptr);
  if (ok == 1 && gcm) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr);
  if (ok == 1) ok = encrypt ? EVP_EncryptInit_ex(c, nullptr, nullptr, key, nullptr) : EVP_DecryptInit_ex(c, nullptr, nullptr, key, nullptr);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(c);
    return nullptr;
  }
  return c;
}

static bool make_hmac(const uint8_t* key, size_t key_len, EVP_MD_CTX** inner, EVP_MD_CTX** outer) {
  uint8_t ipad[64];
  uint8_t opad[64];
  memset(ipad, 0x36, 64);
  memset(opad, 0x5c, 64);
  for (size_t i = 0; i < key_len; i++) {
    ipad[i] ^= key[i];
    opad[i] ^= key[i];
  }
  *inner = EVP_MD_CTX_new();
  *outer = EVP_MD_CTX_new();
  bool ok = *inner && *outer && EVP_DigestInit_ex(*inner, EVP_sha1(), nullptr) == 1 && EVP_DigestUpdate(*inner, ipad, 64) == 1 &&
            EVP_DigestInit_ex(*outer, EVP_sha1(), nullptr) == 1 && EVP_DigestUpdate(*outer, opad, 64) == 1;
  OPENSSL_cleanse(ipad, 64);
  OPENSSL_cleanse(opad, 64);
  return ok;
}

bool Direction::init(int profile, const uint8_t* master_key, size_t key_len, const uint8_t* master_salt, size_t salt_len) {
  ready_ = false;
  if (key_len != 16) return false;
  if (profile == PROFILE_AEAD_AES128_GCM) {
    if (salt_len != 12) return false;
    gcm_ = true;
  } else if (profile == PROFILE_AES128_CM_HMAC_SHA1_80) {
    if (salt_len != 14) return false;
    gcm_ = false;
  } else {
    return false;
  }
  profile_ = profile;
  uint8_t rtp_key[16];
  uint8_t rtcp_key[16];
  uint8_t rtp_auth[20];
  uint8_t rtcp_auth[20];
  bool ok = derive_key(master_key, master_salt, salt_len, 0, rtp_key, 16) && derive_key(master_key, master_salt, salt_len, 2, rtp_salt_, 14) &&
            derive_key(master_key, master_salt, salt_len, 3, rtcp_key, 16) && derive_key(master_key, master_salt, salt_len, 5, rtcp_salt_, 14);
  if (ok && !gcm_) ok = derive_key(master_key, master_salt, salt_len, 1, rtp_auth, 20) && derive_key(master_key, master_salt, salt_len, 4, rtcp_auth, 20);
  if (ok) {
    free_ctx(rtp_enc_);
    free_ctx(rtp_dec_);
    free_ctx(rtcp_enc_);
    free_ctx(rtcp_dec_);
    rtp_enc_ = make_cipher(gcm_, true, rtp_key);
    rtp_dec_ = make_cipher(gcm_, false, rtp_key);
    rtcp_enc_ = make_cipher(gcm_, true, rtcp_key);
    rtcp_dec_ = make_cipher(gcm_, false, rtcp_key);
    ok = rtp_enc_ && rtp_dec_ && rtcp_enc_ && rtcp_dec_;
  }
  if (ok && !gcm_) {
    free_md(rtp_inner_);
    free_md(rtp_outer_);
    free_md(rtcp_inner_);
    free_md(rtcp_outer_);
    ok = make_hmac(rtp_auth, 20, &rtp_inner_, &rtp_outer_) && make_hmac(rtcp_auth, 20, &rtcp_inner_, &rtcp_outer_);
  }
  if (ok && !work_) {
    work_ = EVP_MD_CTX_new();
    ok = work_ != nullptr;
  }
  OPENSSL_cleanse(rtp_key, sizeof rtp_key);
  OPENSSL_cleanse(rtcp_key, sizeof rtcp_key);
  OPENSSL_cleanse(rtp_auth, sizeof rtp_auth);
  OPENSSL_cleanse(rtcp_auth, sizeof rtcp_auth);
  ready_ = ok;
  return ok;
}

bool Direction::auth_tag(EVP_MD_CTX* inner, EVP_MD_CTX* outer, const uint8_t* a, size_t an, const uint8_t* b, size_t bn, uint8_t out[20]) {
  uint8_t h[20];
  unsigned int hl = 0;
  if (EVP_MD_CTX_copy_ex(work_, inner) != 1 || EVP_DigestUpdate(work_, a, an) != 1 || (bn && EVP_DigestUpdate(work_, b, bn) != 1) ||
      EVP_DigestFinal_ex(work_, h, &hl) != 1)
    return false;
  if (EVP_MD_CTX_copy_ex(work_, outer) != 1 || EVP_DigestUpdate(work_, h, 20) != 1 || EVP_DigestFinal_ex(work_, out, &hl) != 1) return false;
  return true;
}

void Direction::iv_rtp(uint8_t iv[16], uint32_t ssrc, uint32_t roc, uint16_t seq) const {
  if (gcm_) {
    // RFC 7714 §8.1: 00 00 || SSRC || ROC || SEQ, XOR the 12-byte salt
    iv[0] = 0;
    iv[1] = 0;
    wr32(iv + 2, ssrc);
    wr32(iv + 6, roc);
    wr16(iv + 10, seq);
    for (int i = 0; i < 12; i++) iv[i] ^= rtp_salt_[i];
  } else {
    // RFC 3711 §4.1.1: (salt·2^16) XOR (SSRC·2^64) XOR (index·2^16)
    memset(iv, 0, 16);
    wr32(iv + 4, ssrc);
    wr32(iv + 8, roc);
    wr16(iv + 12, seq);
    for (int i = 0; i < 14; i++) iv[i] ^= rtp_salt_[i];
  }
}

void Direction::iv_rtcp(uint8_t iv[16], uint32_t ssrc, uint32_t index) const {
  if (gcm_) {
    // RFC 7714 §9.1: 00 00 || SSRC || 00 00 || 0 + SRTCP index (31 bits)
    iv[0] = iv[1] = 0;
    wr32(iv + 2, ssrc);
    iv[6] = iv[7] = 0;
    wr32(iv + 8, index & 0x7fffffff);
    for (int i = 0; i < 12; i++) iv[i] ^= rtcp_salt_[i];
  } else {
    memset(iv, 0, 16);
    wr32(iv + 4, ssrc);
    wr32(iv + 10, index & 0x7fffffff);
    for (int i = 0; i < 14; i++) iv[i] ^= rtcp_salt_[i];
  }
}

size_t Direction::protect_rtp(uint8_t* p, size_t len, size_t header_len, uint32_t ssrc, uint16_t seq, uint32_t roc) {
  if (!ready_ || header_len > len || len > 0x7fffffff) return 0;
  uint8_t iv[16];
  iv_rtp(iv, ssrc, roc, seq);
  int outl = 0;
  int payload = (int)(len - header_len);
  if (gcm_) {
    int fin = 0;
    if (EVP_EncryptInit_ex(rtp_enc_, nullptr, nullptr, nullptr, iv) != 1 || EVP_EncryptUpdate(rtp_enc_, nullptr, &outl, p, (int)header_len) != 1 ||
        EVP_EncryptUpdate(rtp_enc_, p + header_len, &outl, p + header_len, payload) != 1 || EVP_EncryptFinal_ex(rtp_enc_, p + header_len + outl, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(rtp_enc_, EVP_CTRL_GCM_GET_TAG, 16, p + len) != 1)
      return 0;
    return len + 16;
  }
  if (EVP_EncryptInit_ex(rtp_enc_, nullptr, nullptr, nullptr, iv) != 1 || EVP_EncryptUpdate(rtp_enc_, p + header_len, &outl, p + header_len, payload) != 1) return 0;
  uint8_t r[4];
  wr32(r, roc);
  uint8_t tag[20];
  // HMAC over header || ciphertext || ROC: the ROC is appended in place, then overwritten by the tag
  memcpy(p + len, r, 4);
  if (!auth_tag(rtp_inner_, rtp_outer_, p, len + 4, nullptr, 0, tag)) return 0;
  memcpy(p + len, tag, 10);
  return len + 10;
}

size_t Direction::unprotect_rtp(uint8_t* p, size_t len, size_t header_len, uint32_t ssrc, uint16_t seq, uint32_t roc) {
  if (!ready_) return 0;
  size_t tag_len = gcm_ ? 16 : 10;
  if (len < header_len + tag_len) return 0;
  size_t body = len - tag_len;
  uint8_t iv[16];
  iv_rtp(iv, ssrc, roc, seq);
  int outl = 0;
  if (gcm_) {
    int fin = 0;
    if (EVP_DecryptInit_ex(rtp_dec_, nullptr, nullptr, nullptr, iv) != 1 || EVP_DecryptUpdate(rtp_dec_, nullptr, &outl, p, (int)header_len) != 1 ||
        EVP_DecryptUpdate(rtp_dec_, p + header_len, &outl, p + header_len, (int)(body - header_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(rtp_dec_, EVP_CTRL_GCM_SET_TAG, 16, p + body) != 1 || EVP_DecryptFinal_ex(rtp_dec_, p + header_len + outl, &fin) != 1)
      return 0;
    return body;
  }
  uint8_t saved[10];
  memcpy(saved, p + body, 10);
  uint8_t r[4];
  wr32(r, roc);
  uint8_t tag[20];
  if (!auth_tag(rtp_inner_, rtp_outer_, p, body, r, 4, tag) || CRYPTO_memcmp(tag, saved, 10) != 0) return 0;
  if (EVP_DecryptInit_ex(rtp_dec_, nullptr, nullptr, nullptr, iv) != 1 || EVP_DecryptUpdate(rtp_dec_, p + header_len, &outl, p + header_len, (int)(body - header_len)) != 1)
    return 0;
  return body;
}

size_t Direction::protect_rtcp(uint8_t* p, size_t len, uint32_t index) {
  if (!ready_ || len < 8 || len > 0x7fffffff) return 0;
  index &= 0x7fffffff;
  uint32_t ssrc = rd32(p + 4);
  uint8_t iv[16];
  iv_rtcp(iv, ssrc, index);
  uint8_t e[4];
  wr32(e, index | 0x80000000u);
  int outl = 0;
  if (gcm_) {
    int fin = 0;
    if (EVP_EncryptInit_ex(rtcp_enc_, nullptr, nullptr, nullptr, iv) != 1 || EVP_EncryptUpdate(rtcp_enc_, nullptr, &outl, p, 8) != 1 ||
        EVP_EncryptUpdate(rtcp_enc_, nullptr, &outl, e, 4) != 1 || EVP_EncryptUpdate(rtcp_enc_, p + 8, &outl, p + 8, (int)(len - 8)) != 1 ||
        EVP_EncryptFinal_ex(rtcp_enc_, p + 8 + outl, &fin) != 1 || EVP_CIPHER_CTX_ctrl(rtcp_enc_, EVP_CTRL_GCM_GET_TAG, 16, p + len) != 1)
      return 0;
    memcpy(p + len + 16, e, 4);
    return len + 20;
  }
  if (EVP_EncryptInit_ex(rtcp_enc_, nullptr, nullptr, nullptr, iv) != 1 || EVP_EncryptUpdate(rtcp_enc_, p + 8, &outl, p + 8, (int)(len - 8)) != 1) return 0;
  memcpy(p + len, e, 4);
  uint8_t tag[20];
  if (!auth_tag(rtcp_inner_, rtcp_outer_, p, len + 4, nullptr, 0, tag)) return 0;
  memcpy(p + len + 4, tag, 10);
  return len + 14;
}

size_t Direction::unprotect_rtcp(uint8_t* p, size_t len, uint32_t* index) {
  if (!ready_) return 0;
  if (gcm_) {
    if (len < 8 + 20) return 0;
    size_t body = len - 20;
    uint32_t e = rd32(p + len - 4);
    bool encrypted = (e & 0x80000000u) != 0;
    uint32_t idx = e & 0x7fffffff;
    uint8_t iv[16];
    iv_rtcp(iv, rd32(p + 4), idx);
    int outl = 0;
    int fin = 0;
    // AAD: the first 8 bytes (everything when not encrypted), then E || index
    size_t aad = encrypted ? 8 : body;
    if (EVP_DecryptInit_ex(rtcp_dec_, nullptr, nullptr, nullptr, iv) != 1 || EVP_DecryptUpdate(rtcp_dec_, nullptr, &outl, p, (int)aad) != 1 ||
        EVP_DecryptUpdate(rtcp_dec_, nullptr, &outl, p + len - 4, 4) != 1)
      return 0;
    outl = 0;
    if (encrypted && EVP_DecryptUpdate(rtcp_dec_, p + 8, &outl, p + 8, (int)(body - 8)) != 1) return 0;
    if (EVP_CIPHER_CTX_ctrl(rtcp_dec_, EVP_CTRL_GCM_SET_TAG, 16, p + body) != 1 || EVP_DecryptFinal_ex(rtcp_dec_, p + 8 + outl, &fin) != 1) return 0;
    *index = idx;
    return body;
  }
  if (len < 8 + 14) return 0;
  size_t body = len - 14;
  uint8_t tag[20];
  if (!auth_tag(rtcp_inner_, rtcp_outer_, p, body + 4, nullptr, 0, tag) || CRYPTO_memcmp(tag, p + body + 4, 10) != 0) return 0;
  uint32_t e = rd32(p + body);
  uint32_t idx = e & 0x7fffffff;
  if (e & 0x80000000u) {
    uint8_t iv[16];
    iv_rtcp(iv, rd32(p + 4), idx);
    int outl = 0;
    if (EVP_DecryptInit_ex(rtcp_dec_, nullptr, nullptr, nullptr, iv) != 1 || EVP_DecryptUpdate(rtcp_dec_, p + 8, &outl, p + 8, (int)(body - 8)) != 1) return 0;
  }
  *index = idx;
  return body;
}

}  // namespace atrium
