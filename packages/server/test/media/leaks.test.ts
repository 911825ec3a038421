// No leaks: 1,000 publish / subscribe / leave cycles through the in-process
// werift engine leave memory, timers, sockets, file descriptors and peer
// connections where they started (measured and printed; see
// support/leaks-harness.ts for the cycle and the measurements). The threaded
// engine has its own file, leaks-threads.test.ts, so that each run gets the
// test runner's full time. Runs inside a loopback-only network namespace.
import { defineLeakTest } from './support/leaks-harness.ts';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 300_000 })) defineLeakTest('werift');
