// RTCPool pools over the raw WebSocket (`/pool/ws`) with Atrium's mesh SDK
// in Chromium pages against a real `atrium serve`, inside a loopback-only
// network namespace: video between every pair, data channels in order (and
// after an ICE restart), glare fifty times in a row, and peers that leave or
// drop cleaned up at the others. The tests are in support/suite.ts.
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { meshSuite } = await import('./support/suite.ts');
  meshSuite('rtcpool-ws');
}
