import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeStats } from './stats.ts';

test('up-streams: bits per second per sent track and layer, from the second sample on', () => {
  const first = computeStats({}, [
    { direction: 'outbound', key: 'v-1', timestamp: 1000, bytesSent: 10_000 },
    { direction: 'outbound', key: 'v-2', timestamp: 1000, bytesSent: 2_000 },
  ]);
  assert.equal(first['v-1']?.['outbound-rtp']?.rate, undefined);
  const second = computeStats(first, [
    { direction: 'outbound', key: 'v-1', timestamp: 3000, bytesSent: 260_000 },
    { direction: 'outbound', key: 'v-2', timestamp: 3000, bytesSent: 27_000 },
  ]);
  assert.equal(second['v-1']?.['outbound-rtp']?.rate, 1_000_000);
  assert.equal(second['v-2']?.['outbound-rtp']?.rate, 100_000);
  assert.equal(second['v-1']?.['outbound-rtp']?.bytesSent, 260_000);
});

test('down-streams: audio energy per second', () => {
  const a = computeStats({}, [{ direction: 'inbound', key: 'a', timestamp: 0, totalAudioEnergy: 1 }]);
  const b = computeStats(a, [{ direction: 'inbound', key: 'a', timestamp: 500, totalAudioEnergy: 1.25 }]);
  assert.equal(b.a?.['inbound-rtp']?.audioEnergy, 0.5);
});

test('a track that disappeared is dropped; a repeated timestamp gives no rate', () => {
  const a = computeStats({}, [{ direction: 'outbound', key: 'x', timestamp: 10, bytesSent: 5 }]);
  const b = computeStats(a, [{ direction: 'outbound', key: 'x', timestamp: 10, bytesSent: 5 }]);
  assert.equal(b.x?.['outbound-rtp']?.rate, undefined);
  assert.deepEqual(computeStats(b, []), {});
});
