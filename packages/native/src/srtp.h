// SRTP and SRTCP (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714
// AEAD_AES_128_GCM) with the OpenSSL that Node ships: session keys derived
// from the DTLS-SRTP master keys, one cipher context per direction made
// once and re-keyed with a fresh IV per packet (nothing is allocated per
// packet), RFC 3711 §3.3.1 index estimation and a replay window per SSRC.
#pragma once
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include <unordered_map>

namespace atrium {

enum Profile : int { PROFILE_AES128_CM_HMAC_SHA1_80 = 1, PROFILE_AEAD_AES128_GCM = 7 };

/** Replay window of RFC 3711 §3.3.2, 1024 packets wide (a video NACK answer can come late). */
struct ReplayWindow {
  static const int BITS = 1024;
  uint64_t highest = 0;  // the highest index accepted so far
  bool started = false;
  uint64_t bits[BITS / 64] = {};
  /** 0: new, 1: a replay or too old. */
  int check(uint64_t index) const;
  void accept(uint64_t index);
};

/** Per incoming SSRC: rollover counter estimation (RFC 3711 §3.3.1) and replay protection. */
struct InboundState {
  uint32_t roc = 0;
  uint16_t s_l = 0;  // highest sequence number so far
  bool started = false;
  ReplayWindow window;
  uint64_t estimate(uint16_t seq, uint32_t* roc_out) const;
  void accept(uint16_t seq, uint32_t roc);
};

/** Per outgoing SSRC: the rollover counter for the packets we number ourselves. */
struct OutboundState {
  uint32_t roc = 0;
  uint16_t last = 0;
  bool started = false;
  /** The ROC for `seq` (a new packet or a retransmission), updating the state when it is the newest. */
  uint32_t roc_for(uint16_t seq);
};

/** The keys of one direction (RTP and RTCP) derived from a master key and salt. */
class Direction {
 public:
  Direction() = default;
  ~Direction();
  Direction(const Direction&) = delete;
  Direction& operator=(const Direction&) = delete;
  /** False when the profile or key lengths are wrong, or OpenSSL refuses. */
  bool init(int profile, const uint8_t* master_key, size_t key_len, const uint8_t* master_salt, size_t salt_len);
  bool ready() const { return ready_; }
  int profile() const { return profile_; }
  /** Bytes added to an RTP packet (tag). */
  size_t rtp_overhead() const { return gcm_ ? 16 : 10; }
  /** Bytes added to an RTCP packet (tag and index). */
  size_t rtcp_overhead() const { return gcm_ ? 20 : 14; }

  /**
   * Protects the RTP packet in `p` (header of `header_len` bytes, then
   * payload, `len` bytes in all) in place; `p` must have room for the tag.
   * Returns the protected length, 0 on failure.
   */
  size_t protect_rtp(uint8_t* p, size_t len, size_t header_len, uint32_t ssrc, uint16_t seq, uint32_t roc);
  /**
   * Authenticates and decrypts in place; returns the plain length (tag
   * removed), 0 when authentication fails.
   */
  size_t unprotect_rtp(uint8_t* p, size_t len, size_t header_len, uint32_t ssrc, uint16_t seq, uint32_t roc);
  /** Protects a compound RTCP packet in place with this SRTCP index; returns the protected length, 0 on failure. */
  size_t protect_rtcp(uint8_t* p, size_t len, uint32_t index);
  /** Authenticates and decrypts in place; `*index` gets the SRTCP index. Returns the plain length, 0 on failure. */
  size_t unprotect_rtcp(uint8_t* p, size_t len, uint32_t* index);

 private:
  bool auth_tag(EVP_MD_CTX* inner, EVP_MD_CTX* outer, const uint8_t* a, size_t an, const uint8_t* b, size_t bn, uint8_t out[20]);
  void iv_rtp(uint8_t iv[16], uint32_t ssrc, uint32_t roc, uint16_t seq) const;
  void iv_rtcp(uint8_t iv[16], uint32_t ssrc, uint32_t index) const;

  bool ready_ = false;
  bool gcm_ = false;
  int profile_ = 0;
  uint8_t rtp_salt_[14] = {};
  uint8_t rtcp_salt_[14] = {};
  EVP_CIPHER_CTX* rtp_enc_ = nullptr;
  EVP_CIPHER_CTX* rtp_dec_ = nullptr;
  EVP_CIPHER_CTX* rtcp_enc_ = nullptr;
  EVP_CIPHER_CTX* rtcp_dec_ = nullptr;
  // HMAC-SHA1 as two precomputed digest states (key ^ ipad, key ^ opad)
  EVP_MD_CTX* rtp_inner_ = nullptr;
  EVP_MD_CTX* rtp_outer_ = nullptr;
  EVP_MD_CTX* rtcp_inner_ = nullptr;
  EVP_MD_CTX* rtcp_outer_ = nullptr;
  EVP_MD_CTX* work_ = nullptr;
};

/** Derives one session key (RFC 3711 §4.3.1, kdr 0; RFC 7714 §11 pads a 12-byte salt). Exposed for tests. */
bool derive_key(const uint8_t* master_key, const uint8_t* master_salt, size_t salt_len, uint8_t label, uint8_t* out, size_t out_len);

}  // namespace atrium
