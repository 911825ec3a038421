// libFuzzer target: an RTP packet as it comes off the wire (after SRTP) —
// the RFC 7983 demultiplexer, the RTP header with its CSRCs, padding and
// header extensions (every id, both forms), and the codec payload facts
// (VP8 descriptor, VP9 / H.264 keyframe starts). Built with AddressSanitizer
// by run.mjs; a read outside the input is a crash.
#include <stddef.h>
#include <stdint.h>

#include <initializer_list>

#include "../src/rtp.h"

using namespace atrium;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volatile size_t sink = 0;
  sink += (size_t)classify(data, size);
  sink += is_rtcp(data, size);
  RtpHeader h;
  if (!parse_rtp(data, size, &h)) return 0;
  // What parse_rtp promises the plane: the header and the payload lie inside the packet.
  if (h.header_length + h.payload_length > size) __builtin_trap();
  for (int id = 0; id <= 255; id++) {
    const uint8_t* ext = nullptr;
    size_t len = 0;
    if (find_extension(data, h, id, &ext, &len)) {
      if (ext < data || ext + len > data + size) __builtin_trap();
      for (size_t i = 0; i < len; i++) sink += ext[i];
    }
  }
  const uint8_t* payload = data + h.header_length;
  Vp8Descriptor d;
  if (parse_vp8(payload, h.payload_length, &d)) {
    if (d.header_length > h.payload_length) __builtin_trap();
    if (d.picture_id >= 0 && d.picture_id_offset + (d.picture_id_bits == 15 ? 2 : 1) > h.payload_length) __builtin_trap();
    if (d.tl0picidx >= 0 && d.tl0_offset >= h.payload_length) __builtin_trap();
  }
  for (Codec c : {Codec::vp8, Codec::vp9, Codec::h264, Codec::opus}) sink += keyframe_start(c, payload, h.payload_length);
  (void)sink;
  return 0;
}
