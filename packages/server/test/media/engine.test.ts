// The werift media engine in real Chromium (the tests are in
// support/engine-suite.ts, shared with engine-native.test.ts). Runs inside a
// loopback-only network namespace (see support/netns.ts).
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url)) await (await import('./support/engine-suite.ts')).defineEngineTests('werift');
