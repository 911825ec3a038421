// libFuzzer target: the packet plane's receive dispatch (Plane::receive and
// what it calls: classification, SRTP/SRTCP unprotect, SSRC binding by MID /
// RID, fan-out and rewrite to two down-tracks, RTCP from subscribers — NACK
// answers from the cache (on an RTX stream for one of them), PLI, transport-cc — and the events for JavaScript)
// without a socket: sent datagrams go to a capture function.
//
// Every input is a sequence of datagrams, each [flags u8][length u16 BE]
// [bytes]. flags bits 0–1: who sends it (0 the publisher, 1 and 2 the two
// subscribers, 3 an unknown address); bit 4: bandwidth probes after it
// (bits 5–7 the count); bit 2: sent as it is (else protected
// first with the sender's SRTP keys, when it parses as RTP or RTCP, so that
// the fuzzer's bytes reach the dispatch behind the authentication); bit 3 of
// the first datagram's flags: AEAD_AES_128_GCM instead of
// AES_CM_128_HMAC_SHA1_80. A fresh plane per input. Built with ASan, UBSan
// and the leak checker by run.mjs.
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <vector>

#include "../src/plane.h"
#include "../src/rtp.h"
#include "../src/srtp.h"

using namespace atrium;

static const uint8_t KEY[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
static const uint8_t SALT[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};
static const uint32_t UP_SSRCS[2] = {0x11223344, 0x55667788};
static const uint32_t RTX_SSRC = 0x99aabbcc;

static sockaddr_in addr(uint16_t port) {
  sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000001);
  a.sin_port = htons(port);
  return a;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  int profile = (data[0] & 8) ? PROFILE_AEAD_AES128_GCM : PROFILE_AES128_CM_HMAC_SHA1_80;
  size_t salt_len = profile == PROFILE_AEAD_AES128_GCM ? 12 : 14;

  Plane plane;
  size_t sent = 0;
  plane.set_capture([&sent](const OutPacket& o) {
    if (o.len > sizeof o.data) __builtin_trap();
    sent++;
  });
  const sockaddr_in peers[4] = {addr(5000), addr(5001), addr(5002), addr(5999)};
  uint32_t sessions[3];
  for (int i = 0; i < 3; i++) {
    sessions[i] = plane.create_session();
    if (!plane.bind_address(sessions[i], peers[i]) || !plane.set_remote(sessions[i], peers[i])) __builtin_trap();
    if (!plane.set_keys(sessions[i], profile, KEY, SALT, KEY, SALT, 16, salt_len)) __builtin_trap();
    plane.set_extensions(sessions[i], 1, 4, 5, 3, 2);
  }
  uint32_t up = plane.create_up(sessions[0], Codec::vp8, true, 90000, "0", {"h", "l"}, {UP_SSRCS[0], UP_SSRCS[1]}, {96});
  if (!up) __builtin_trap();
  // RTX (RFC 4588) payload type 97 repairs 96; layer 0's RTX SSRC signalled, layer 1's learnt from the packets
  if (!plane.set_up_rtx(up, {{97, 96}}, {RTX_SSRC, 0})) __builtin_trap();
  uint32_t downs[2];
  for (int i = 0; i < 2; i++) {
    // the first subscriber negotiated RTX (its NACKs are answered there), the second did not
    downs[i] = i == 0 ? plane.create_down(sessions[1], up, 0xa0000000u, 96, 3, 0xb0000000u, 97) : plane.create_down(sessions[2], up, 0xa0000001u, 96, 3);
    if (!downs[i]) __builtin_trap();
    plane.set_target(downs[i], i);
  }

  // What each sender protects with: the same keys, its own SRTP state.
  Direction senders[4];
  for (auto& d : senders)
    if (!d.init(profile, KEY, 16, SALT, salt_len)) __builtin_trap();
  uint32_t rtcp_index[4] = {0, 0, 0, 0};
  in_addr local;
  local.s_addr = htonl(0x7f000001);
  std::vector<uint8_t> buf;
  std::vector<uint8_t> events;
  size_t i = 0;
  while (i + 3 <= size) {
    uint8_t flags = data[i];
    size_t len = ((size_t)data[i + 1] << 8) | data[i + 2];
    i += 3;
    if (len > size - i) len = size - i;
    const uint8_t* p = data + i;
    i += len;
    int from = flags & 3;
    buf.assign(p, p + len);
    buf.resize(len + 32);
    size_t n = len;
    if (!(flags & 4)) {
      RtpHeader h;
      if (is_rtcp(p, len)) {
        if (len >= 8) n = senders[from].protect_rtcp(buf.data(), len, ++rtcp_index[from]);
      } else if (parse_rtp(p, len, &h)) {
        n = senders[from].protect_rtp(buf.data(), len, h.header_length, h.ssrc, h.seq, 0);
      }
      if (n == 0) n = len;  // protect refused it: send the bytes as they are
      if (n > buf.size()) __builtin_trap();
    }
    plane.receive(buf.data(), n, peers[from], &local);
    plane.flush();
    // bit 4: a bandwidth probe on each down-track after it (bits 5-7: how many packets; only the RTX one sends)
    if (flags & 0x10)
      for (uint32_t d : downs) plane.probe(d, flags >> 5, 1 + (int)(len % 255));
    plane.take_events(&events);
    events.clear();
    plane.datagrams().clear();
  }
  std::vector<double> stats;
  plane.up_stats(up, &stats);
  for (uint32_t d : downs) plane.down_stats(d, &stats);
  for (uint32_t s : sessions) plane.session_stats(s, &stats);
  plane.close_down(downs[0]);
  plane.close_up(up);
  plane.close_session(sessions[2]);
  return 0;
}
