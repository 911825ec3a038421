// No leaks through the threaded engine: 1,000 publish / subscribe / leave
// cycles with the engine in two worker threads leave the process and each
// worker (heap, timers, sockets, file descriptors, streams, peer
// connections) where they started. See support/leaks-harness.ts. Runs
// inside a loopback-only network namespace.
import { defineLeakTest } from './support/leaks-harness.ts';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 300_000 })) defineLeakTest('threads');
