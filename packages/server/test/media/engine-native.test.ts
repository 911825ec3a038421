// The native media engine (werift for ICE/DTLS, the packet plane of
// packages/native for RTP) in real Chromium, with the same tests as the
// werift engine (support/engine-suite.ts). Runs inside a loopback-only
// network namespace (see support/netns.ts).
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url)) await (await import('./support/engine-suite.ts')).defineEngineTests('native');
