// libFuzzer target: a compound RTCP packet (after SRTCP) walked as the plane
// walks it — every packet of the compound, report blocks, sender info,
// feedback's media SSRC, generic NACK, FIR, REMB and transport-cc feedback.
// Built with AddressSanitizer by run.mjs.
#include <stddef.h>
#include <stdint.h>

#include "../src/rtp.h"

using namespace atrium;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volatile uint64_t sink = 0;
  size_t off = 0;
  RtcpPacket r;
  while (next_rtcp(data, size, off, &r)) {
    if (r.length < 4 || off + r.length > size || r.body + r.body_length > data + size) __builtin_trap();
    ReportBlock b;
    for (int i = 0; report_block(r, i, &b); i++) sink += b.ssrc + (uint32_t)b.packets_lost;
    uint32_t ssrc = 0, rtp = 0;
    uint64_t ntp = 0;
    if (sender_info(r, &ssrc, &ntp, &rtp)) sink += ntp + rtp;
    uint32_t media = 0;
    if (feedback_media_ssrc(r, &media)) sink += media;
    for_each_nack(r, [&](uint16_t seq) { sink += seq; });
    for_each_fir(r, [&](uint32_t s, uint8_t seq) { sink += s + seq; });
    double remb = parse_remb(r);
    if (remb >= 0) sink += remb > 1e12 ? 1 : (uint64_t)remb;  // a double: the plane hands it to JavaScript as one
    for_each_twcc(r, [&](uint16_t seq, bool received, int64_t at) { sink += seq + received + (uint64_t)at; });
    off += r.length;
  }
  (void)sink;
  return 0;
}
