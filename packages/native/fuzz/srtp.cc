// libFuzzer target: SRTP and SRTCP as they arrive — unprotect any datagram
// with both profiles (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM), with the
// rollover counter estimation and replay window the plane uses; and, as an
// oracle, protect-then-unprotect of the input as a plain RTP / RTCP packet
// must give the input back. Built with AddressSanitizer (and leak checks:
// one cipher context set per run, freed by ~Direction) by run.mjs.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <vector>

#include "../src/rtp.h"
#include "../src/srtp.h"

using namespace atrium;

static const uint8_t KEY[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
static const uint8_t SALT[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  int profile = (data[0] & 1) ? PROFILE_AEAD_AES128_GCM : PROFILE_AES128_CM_HMAC_SHA1_80;
  size_t salt_len = profile == PROFILE_AEAD_AES128_GCM ? 12 : 14;
  const uint8_t* p = data + 1;
  size_t n = size - 1;
  Direction send, recv;
  if (!send.init(profile, KEY, 16, SALT, salt_len) || !recv.init(profile, KEY, 16, SALT, salt_len)) __builtin_trap();
  // Room for the tag (and the SRTCP index) after the packet.
  std::vector<uint8_t> buf(n + 32);
  InboundState in;

  if (is_rtcp(p, n)) {
    memcpy(buf.data(), p, n);
    uint32_t index = 0;
    size_t plain = recv.unprotect_rtcp(buf.data(), n, &index);
    if (plain > n) __builtin_trap();
    if (n >= 8) {
      memcpy(buf.data(), p, n);
      size_t sealed = send.protect_rtcp(buf.data(), n, 5);
      if (sealed) {
        size_t back = recv.unprotect_rtcp(buf.data(), sealed, &index);
        if (back != n || index != 5 || memcmp(buf.data(), p, n) != 0) __builtin_trap();
      }
    }
    return 0;
  }
  RtpHeader h;
  if (!parse_rtp(p, n, &h)) {
    // Not RTP: still fed to unprotect with a made-up header length, which must refuse it or stay inside.
    memcpy(buf.data(), p, n);
    if (n >= 12 && recv.unprotect_rtp(buf.data(), n, 12, 1, 0, 0) > n) __builtin_trap();
    return 0;
  }
  uint32_t roc = 0;
  uint64_t index = in.estimate(h.seq, &roc);
  (void)index;
  memcpy(buf.data(), p, n);
  if (recv.unprotect_rtp(buf.data(), n, h.header_length, h.ssrc, h.seq, roc) > n) __builtin_trap();
  // The oracle: what we protect, we unprotect to the same bytes.
  memcpy(buf.data(), p, n);
  size_t sealed = send.protect_rtp(buf.data(), n, h.header_length, h.ssrc, h.seq, roc);
  if (sealed) {
    size_t back = recv.unprotect_rtp(buf.data(), sealed, h.header_length, h.ssrc, h.seq, roc);
    if (back != n || memcmp(buf.data(), p, n) != 0) __builtin_trap();
    in.accept(h.seq, roc);
    if (in.window.check(((uint64_t)roc << 16) | h.seq) != 1) __builtin_trap();  // now a replay
  }
  return 0;
}
