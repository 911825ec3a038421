// The fast send path's bytes against werift's own: RTP header and
// transport-cc extension as werift serialises them, SRTP protection that
// werift decrypts (and that equals werift's own encryption), rollover counter
// across the 16-bit wrap, NTP time of sender reports.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RTCPeerConnection, RtpHeader, RtpPacket, SrtpSession } from 'werift';
import { ntpFromMs } from '../../src/media/werift/down-stream.ts';
import { FastRtpSender, nominatedSocket, raiseSocketBuffers, type DtlsTransportLike } from '../../src/media/werift/fast-send.ts';
import { SrtpProtector, rolloverFor, rtpHeaderLength, writeRtpHeader, type SrtpSsrcState, type WeriftSrtpContext } from '../../src/media/werift/srtp.ts';

const TWCC_ID = 3;

function header(pt: number, marker: boolean, seq: number, ts: number, ssrc: number, twccId: number, twccSeq: number): Buffer {
  const b = Buffer.alloc(rtpHeaderLength(twccId));
  assert.equal(writeRtpHeader(b, pt, marker, seq, ts, ssrc, twccId, twccSeq), b.length);
  return b;
}

function weriftHeader(pt: number, marker: boolean, seq: number, ts: number, ssrc: number, twccId: number, twccSeq: number): RtpHeader {
  const extensions = twccId > 0 ? [{ id: twccId, payload: Buffer.from([twccSeq >> 8, twccSeq & 0xff]) }] : [];
  return new RtpHeader({ payloadType: pt, marker, sequenceNumber: seq, timestamp: ts, ssrc, extensions });
}

/** Two werift sessions with crossed keys: what `a` protects, `b` decrypts. */
function sessions(profile: number): { a: SrtpSession; b: SrtpSession; a2: SrtpSession } {
  const k1 = randomBytes(16);
  const s1 = randomBytes(profile === ProtectionProfileAeadAes128Gcm ? 12 : 14);
  const k2 = randomBytes(16);
  const s2 = randomBytes(s1.length);
  const cfg = (lk: Buffer, ls: Buffer, rk: Buffer, rs: Buffer) => ({ keys: { localMasterKey: lk, localMasterSalt: ls, remoteMasterKey: rk, remoteMasterSalt: rs }, profile });
  return { a: new SrtpSession(cfg(k1, s1, k2, s2)), a2: new SrtpSession(cfg(k1, s1, k2, s2)), b: new SrtpSession(cfg(k2, s2, k1, s1)) };
}

describe('RTP header bytes', () => {
  test('equal what werift serialises, with and without transport-cc', () => {
    for (const [twccId, marker] of [
      [TWCC_ID, true],
      [TWCC_ID, false],
      [14, true],
      [0, true],
      [0, false],
    ] as const) {
      const ours = header(96, marker, 0xfffe, 0xfedcba98, 0x89abcdef, twccId, 0xbeef);
      const theirs = weriftHeader(96, marker, 0xfffe, 0xfedcba98, 0x89abcdef, twccId, 0xbeef).serialize(rtpHeaderLength(twccId));
      assert.deepEqual(ours, theirs, `twcc id ${twccId}, marker ${marker}`);
    }
  });

  test('werift parses our header back', () => {
    const payload = randomBytes(50);
    const p = RtpPacket.deSerialize(Buffer.concat([header(111, true, 1234, 567890, 42, TWCC_ID, 65535), payload]));
    assert.equal(p.header.payloadType, 111);
    assert.equal(p.header.marker, true);
    assert.equal(p.header.sequenceNumber, 1234);
    assert.equal(p.header.timestamp, 567890);
    assert.equal(p.header.ssrc, 42);
    assert.deepEqual(
      p.header.extensions.map((e) => [e.id, e.payload.readUInt16BE(0)]),
      [[TWCC_ID, 65535]],
    );
    assert.deepEqual(p.payload, payload);
  });
});

for (const [name, profile] of [
  ['AEAD_AES_128_GCM', ProtectionProfileAeadAes128Gcm],
  ['AES_CM_128_HMAC_SHA1_80', ProtectionProfileAes128CmHmacSha1_80],
] as const) {
  describe(`SRTP ${name}`, () => {
    test('werift decrypts what we protect, and our bytes equal its own encryption', () => {
      const { a, a2, b } = sessions(profile);
      const ctx = a.localContext as unknown as WeriftSrtpContext;
      const protector = SrtpProtector.fromWerift(ctx);
      assert.ok(protector, 'profile supported');
      const ssrc = 0xdeadbeef;
      const state = ctx.getSrtpSsrcState(ssrc);
      // across the sequence wrap: the ROC must step to 1
      const seqs = [65530, 65531, 65533, 65532, 65534, 65535, 0, 1, 2, 3];
      for (const [i, seq] of seqs.entries()) {
        const payload = randomBytes(100 + i * 37);
        const twccSeq = (60000 + i) & 0xffff;
        const h = header(96, i % 3 === 0, seq, 1000 * i, ssrc, TWCC_ID, twccSeq);
        const roc = rolloverFor(state, seq);
        const parts = protector.protect(h, payload, ssrc, seq, roc);
        const datagram = Buffer.concat(parts);
        assert.equal(datagram.length, h.length + payload.length + protector.tagLength);
        // werift's own encryption of the same packet, from a twin session
        const theirs = a2.encrypt(payload, weriftHeader(96, i % 3 === 0, seq, 1000 * i, ssrc, TWCC_ID, twccSeq));
        assert.deepEqual(datagram, theirs, `seq ${seq}: same bytes as werift`);
        const plain = RtpPacket.deSerialize(b.decrypt(datagram));
        assert.equal(plain.header.sequenceNumber, seq);
        assert.equal(plain.header.ssrc, ssrc);
        assert.deepEqual(plain.payload, payload, `seq ${seq}: payload round trip`);
        assert.equal(plain.header.extensions[0]?.payload.readUInt16BE(0), twccSeq);
      }
      assert.equal(state.rolloverCounter, 1);
      assert.equal(state.lastSequenceNumber, 3);
    });

    test('a retransmission from before the wrap keeps its old ROC', () => {
      const { a, b } = sessions(profile);
      const ctx = a.localContext as unknown as WeriftSrtpContext;
      const protector = SrtpProtector.fromWerift(ctx)!;
      const ssrc = 7;
      const state = ctx.getSrtpSsrcState(ssrc);
      const send = (seq: number) => {
        const payload = randomBytes(80);
        const parts = protector.protect(header(96, false, seq, 0, ssrc, 0, 0), payload, ssrc, seq, rolloverFor(state, seq));
        assert.deepEqual(RtpPacket.deSerialize(b.decrypt(Buffer.concat(parts))).payload, payload, `seq ${seq}`);
      };
      for (const seq of [65534, 65535, 0, 1]) send(seq);
      send(65535); // NACK answer: ROC 0, state untouched
      assert.equal(state.rolloverCounter, 1);
      assert.equal(state.lastSequenceNumber, 1);
      send(2);
    });
  });
}

describe('rollover counter', () => {
  test('RFC 3711 §3.3.1 estimate', () => {
    const s: SrtpSsrcState = { rolloverCounter: 0, lastSequenceNumber: 0 };
    assert.equal(rolloverFor(s, 40000), 0);
    assert.equal(rolloverFor(s, 65535), 0);
    assert.equal(rolloverFor(s, 10), 1); // wrapped
    assert.equal(s.rolloverCounter, 1);
    assert.equal(rolloverFor(s, 65000), 0); // late packet from before the wrap
    assert.equal(s.rolloverCounter, 1);
    assert.equal(s.lastSequenceNumber, 10);
    assert.equal(rolloverFor(s, 9), 1); // reordered, same cycle
    assert.equal(s.lastSequenceNumber, 10);
    assert.equal(rolloverFor(s, 40000), 0); // more than half the space ahead: taken as the previous cycle
    assert.equal(rolloverFor(s, 30000), 1);
    assert.equal(rolloverFor(s, 60000), 1);
    assert.equal(rolloverFor(s, 100), 2);
    assert.equal(s.rolloverCounter, 2);
  });

  test('an unsupported profile gives no protector', () => {
    const ctx = { profile: 0x0002, srtpSessionKey: Buffer.alloc(16), srtpSessionSalt: Buffer.alloc(14), getSrtpSsrcState: () => ({ rolloverCounter: 0, lastSequenceNumber: 0 }) };
    assert.equal(SrtpProtector.fromWerift(ctx), undefined);
  });
});

describe('sender report NTP time', () => {
  test('seconds since 1900 and a 32-bit fraction', () => {
    const ms = Date.UTC(2026, 10, 21, 12, 0, 0, 250);
    const ntp = ntpFromMs(ms);
    assert.equal(Number(ntp >> 32n), ms / 1000 - 0.25 + 2208988800);
    assert.equal(Number(ntp & 0xffffffffn), 0x40000000);
  });
});

describe('fast path on a live werift connection', () => {
  test('finds the nominated UDP socket, raises its buffers, and werift receives what it sends', async () => {
    const config = { iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'], iceUseIpv6: false, bundlePolicy: 'max-bundle' as const };
    const a = new RTCPeerConnection(config);
    const b = new RTCPeerConnection(config);
    try {
      a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => {})));
      b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => {})));
      const tx = a.addTransceiver('audio', { direction: 'sendonly' });
      const received = new Promise<RtpPacket>((resolve) => {
        b.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((p) => resolve(p)));
      });
      const connected = (pc: RTCPeerConnection) =>
        new Promise<void>((resolve) => {
          if (pc.connectionState === 'connected') resolve();
          pc.connectionStateChange.subscribe((s) => s === 'connected' && resolve());
        });
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription!);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription!);
      await Promise.all([connected(a), connected(b)]);
      const dtls = tx.sender.dtlsTransport as unknown as DtlsTransportLike;
      const found = nominatedSocket(dtls);
      assert.ok(found, 'a plain UDP nominated pair');
      const before = found.socket.getRecvBufferSize();
      const size = raiseSocketBuffers(dtls, 4 << 20);
      assert.ok(size > before && size >= Math.min(4 << 20, 2 * 212992), `receive buffer raised (${before} → ${size})`);
      const fast = new FastRtpSender(dtls);
      assert.ok(fast.usable, 'fast path usable');
      const payload = randomBytes(300);
      const pt = tx.sender.codec!.payloadType;
      const ssrc = tx.sender.ssrc;
      const sentBefore = dtls.packetsSent ?? 0;
      const h = header(pt, true, 4321, 99999, ssrc, 0, 0);
      assert.ok(fast.send(h, payload, ssrc, 4321) > 0, 'sent');
      assert.equal(dtls.packetsSent, sentBefore + 1, "werift's transport counters kept");
      const p = await Promise.race([received, setTimeout(5000).then(() => undefined)]);
      assert.ok(p, 'werift received the packet');
      assert.equal(p.header.sequenceNumber, 4321);
      assert.equal(p.header.timestamp, 99999);
      assert.deepEqual(p.payload, payload);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
