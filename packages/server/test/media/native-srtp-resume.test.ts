// The packet plane's SRTP hand-over between media workers (srtpState /
// resumeSrtp, used when a native worker dies and its replacement continues its
// streams): a publisher whose sequence numbers wrapped before the crash
// (rollover counter 1) keeps authenticating on a plane that resumed the saved
// state, and does not on a plane that starts afresh (it would guess rollover 0).
// Real UDP on loopback; packets are protected with the addon's own SRTP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadNativeAddon, SESSION } from '../../src/media/native/addon.ts';

const load = loadNativeAddon();
const GCM = 7;
const SSRC = 0x11223344;

function rtp(seq: number): Buffer {
  const b = Buffer.alloc(12 + 40 + 16);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 3000, 4);
  b.writeUInt32BE(SSRC, 8);
  randomBytes(40).copy(b, 12);
  return b.subarray(0, 52);
}

test('a resumed SRTP session keeps the peer rollover counter (and a fresh one loses it)', {
  skip: load.ok ? false : `the native packet plane is not available: ${load.ok ? '' : load.reason}`,
}, async () => {
  if (!load.ok) return;
  const { addon } = load;
  const lk = randomBytes(16);
  const ls = randomBytes(12);
  const rk = randomBytes(16);
  const rs = randomBytes(12);
  const peer = createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
  const peerPort = peer.address().port;
  const plane = new addon.Plane(() => {});
  const port = plane.open({});
  try {
    const session = (resume: boolean): number => {
      const s = plane.createSession();
      assert.ok(plane.bindAddress(s, '127.0.0.1', peerPort));
      assert.ok(plane.setKeys(s, GCM, lk, ls, rk, rs));
      // as the dead worker reported it: SRTCP index 500, the peer's SSRC at rollover 1, highest sequence number 65 530
      if (resume) assert.ok(plane.resumeSrtp(s, Uint32Array.from([500, SSRC, 1, 65_530]), 100));
      return s;
    };
    // the peer's packets just after the state was saved, across the wrap: rollover 1 then 2
    const packets = [65_531, 65_535, 0, 5].map((seq) => addon.srtp('protect-rtp', GCM, rk, rs, rtp(seq), seq >= 65_531 ? 1 : 2)!);
    const send = async () => {
      for (const p of packets) await new Promise<void>((r) => peer.send(p, port, '127.0.0.1', () => r()));
      await sleep(200);
    };

    const resumed = session(true);
    await send();
    const st = plane.sessionStats(resumed)!;
    assert.equal(st[SESSION.authFailures], 0, 'every packet authenticates on the resumed session');
    assert.deepEqual([...plane.srtpState(resumed)!], [600, SSRC, 2, 5], 'SRTCP numbering continues past the margin; the peer is at rollover 2, sequence 5');
    plane.closeSession(resumed);

    const fresh = session(false);
    await send();
    assert.equal(plane.sessionStats(fresh)![SESSION.authFailures], packets.length, 'a fresh session guesses rollover 0 and authenticates none of them');
    plane.closeSession(fresh);

    assert.equal(plane.resumeSrtp(session(false), Uint32Array.from([1, 2]), 0), false, 'a malformed state is refused');
  } finally {
    plane.close();
    peer.close();
  }
});
