// The browser side of the media quality tests and bench/quality: a page
// script that publishes a simulcast camera or plays a stream offered by the
// engine, and reads what a person would see from getStats (frames decoded,
// frame width, freezes), plus the UDP port each peer connection uses (for
// the impairment rules, see impair.ts).
import type { Page } from 'playwright-core';

export const QUALITY_PAGE_SCRIPT = `
  window.pcs = {};
  function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
  }
  window.publish = async function (id, width, height) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width, height, frameRate: 30 } });
    const pc = new RTCPeerConnection({ iceServers: [] });
    pcs[id] = pc;
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
    pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream],
      sendEncodings: [{ rid: 'h' }, { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 100000 }] });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    return pc.localDescription.sdp;
  };
  window.answerOffer = async function (id, sdp) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pcs[id] = pc;
    pc.ontrack = (e) => {
      const el = document.createElement(e.track.kind);
      el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
      document.body.appendChild(el);
    };
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    return pc.localDescription.sdp;
  };
  window.setAnswer = async (id, sdp) => { await pcs[id].setRemoteDescription({ type: 'answer', sdp }); };
  window.addCandidate = async (id, c) => { await pcs[id].addIceCandidate(c); };
  window.localPort = async function (id) {
    const stats = await pcs[id].getStats();
    let pair;
    stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return 0;
    const local = stats.get(pair.localCandidateId);
    return local && local.protocol === 'udp' ? local.port : 0;
  };
  window.outbound = async function (id) {
    const out = { layers: {}, availableOutgoingBitrate: 0 };
    const stats = await pcs[id].getStats();
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.layers[s.rid || ''] = { fps: s.framesPerSecond || 0, width: s.frameWidth || 0, framesEncoded: s.framesEncoded || 0,
          reason: s.qualityLimitationReason, targetBitrate: s.targetBitrate || 0, bytesSent: s.bytesSent || 0,
          retransmittedBytesSent: s.retransmittedBytesSent || 0, retransmittedPacketsSent: s.retransmittedPacketsSent || 0, nackCount: s.nackCount || 0 };
      }
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) out.availableOutgoingBitrate = s.availableOutgoingBitrate;
    });
    return out;
  };
  window.inbound = async function (id) {
    const out = { framesDecoded: 0, frameWidth: 0, fps: 0, bytes: 0, freezeCount: 0, totalFreezesDuration: 0, packetsLost: 0, nackCount: 0, retransmitted: 0, pliCount: 0, firCount: 0, framesDropped: 0, jitterBufferDelay: 0, jitterBufferEmittedCount: 0 };
    const stats = await pcs[id].getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0; out.frameWidth = s.frameWidth || 0; out.fps = s.framesPerSecond || 0;
        out.bytes = s.bytesReceived || 0; out.freezeCount = s.freezeCount || 0; out.totalFreezesDuration = s.totalFreezesDuration || 0;
        out.packetsLost = s.packetsLost || 0; out.nackCount = s.nackCount || 0; out.retransmitted = s.retransmittedPacketsReceived || 0;
        out.pliCount = s.pliCount || 0; out.firCount = s.firCount || 0; out.framesDropped = s.framesDropped || 0;
        out.jitterBufferDelay = s.jitterBufferDelay || 0; out.jitterBufferEmittedCount = s.jitterBufferEmittedCount || 0;
      }
    });
    return out;
  };
`;

export interface Outbound {
  layers: Record<
    string,
    { fps: number; width: number; framesEncoded: number; reason: string; targetBitrate: number; bytesSent: number; retransmittedBytesSent: number; retransmittedPacketsSent: number; nackCount: number }
  >;
  availableOutgoingBitrate: number;
}

export interface Inbound {
  framesDecoded: number;
  frameWidth: number;
  fps: number;
  bytes: number;
  freezeCount: number;
  /** Seconds. */
  totalFreezesDuration: number;
  packetsLost: number;
  nackCount: number;
  retransmitted: number;
  /** Keyframe requests the browser sent. */
  pliCount: number;
  firCount: number;
  framesDropped: number;
  /** Seconds, summed over jitterBufferEmittedCount frames. */
  jitterBufferDelay: number;
  jitterBufferEmittedCount: number;
}

export const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> => page.evaluate(`${fn}(...${JSON.stringify(args)})`) as Promise<T>;
