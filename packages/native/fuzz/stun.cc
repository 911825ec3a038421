// libFuzzer target: the little of STUN the socket demultiplexer reads
// (message header, binding request, the local ufrag in USERNAME). Built
// with AddressSanitizer by run.mjs.
#include <stddef.h>
#include <stdint.h>

#include "../src/rtp.h"

using namespace atrium;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volatile size_t sink = is_stun_binding_request(data, size);
  const uint8_t* ufrag = nullptr;
  size_t n = stun_local_ufrag(data, size, &ufrag);
  if (n > 0) {
    if (ufrag < data || ufrag + n > data + size) __builtin_trap();
    for (size_t i = 0; i < n; i++) sink += ufrag[i];
  }
  (void)sink;
  return 0;
}
