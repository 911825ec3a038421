// Real WebRTC peers for the frame table, on node-datachannel (libdatachannel):
// a publisher that offers one sendonly VP8 track and sends VP8-shaped RTP,
// and a subscriber that answers the server's offers and counts the RTP
// packets that arrive. They do no signalling of their own: the table's rows
// put their SDP and candidates into the exact frames Galène's client sends.
import ndc from 'node-datachannel';

const BIND = '127.0.0.1';
const VP8_PT = 96;
const RTP_HEADER = 12;

export interface CandidateInit {
  candidate: string;
  sdpMid: string;
  sdpMLineIndex: number;
  usernameFragment?: string;
}

/** A local candidate as a browser's RTCIceCandidate.toJSON() gives it (what Galène's client sends). */
function candidateInit(line: string, mid: string, ufrag: string | undefined): CandidateInit {
  const c: CandidateInit = { candidate: line.replace(/^a=/, ''), sdpMid: mid, sdpMLineIndex: 0 };
  if (ufrag !== undefined) c.usernameFragment = ufrag;
  return c;
}

function ufragOf(sdp: string): string | undefined {
  return /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
}

abstract class Peer {
  protected readonly pc: InstanceType<typeof ndc.PeerConnection>;
  /** Local candidates, in the order gathered. */
  readonly candidates: CandidateInit[] = [];
  private readonly candidateWaiters: ((c: CandidateInit) => void)[] = [];
  private descriptionWaiters: ((sdp: string) => void)[] = [];
  protected ufrag: string | undefined;

  constructor(name: string) {
    this.pc = new ndc.PeerConnection(name, { iceServers: [], bindAddress: BIND });
    this.pc.onLocalCandidate((line, mid) => {
      const c = candidateInit(line, mid, this.ufrag);
      this.candidates.push(c);
      for (const w of this.candidateWaiters.splice(0)) w(c);
    });
    this.pc.onLocalDescription((sdp) => {
      this.ufrag = ufragOf(sdp);
      for (const w of this.descriptionWaiters.splice(0)) w(sdp);
    });
  }

  protected nextDescription(): Promise<string> {
    return new Promise((resolve) => this.descriptionWaiters.push(resolve));
  }

  /** The first local candidate (waits for gathering to find one). */
  firstCandidate(): Promise<CandidateInit> {
    const c = this.candidates[0];
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => this.candidateWaiters.push(resolve));
  }

  addRemoteCandidate(c: { candidate?: string; sdpMid?: string | null } | null | undefined): void {
    if (c?.candidate) this.pc.addRemoteCandidate(c.candidate, c.sdpMid ?? '0');
  }

  get state(): string {
    return this.pc.state();
  }

  close(): void {
    try {
      this.pc.close();
    } catch {
      /* already closed */
    }
  }
}

/** One camera-like up-stream: a sendonly VP8 track. */
export class Publisher extends Peer {
  private readonly track: ReturnType<InstanceType<typeof ndc.PeerConnection>['addTrack']>;
  private readonly ssrc = (Math.random() * 0xffffffff) >>> 0;
  private seq = Math.floor(Math.random() * 0x10000);
  private ts = (Math.random() * 0xffffffff) >>> 0;
  private picture = 0;
  private timer: NodeJS.Timeout | undefined;
  private keyframeWanted = true;
  sent = 0;

  constructor(name: string) {
    super(name);
    const video = new ndc.Video('0', 'SendOnly');
    video.addVP8Codec(VP8_PT);
    video.addSSRC(this.ssrc, `cname-${name}`, name, `${name}-video`);
    this.track = this.pc.addTrack(video);
    this.track.onMessage((msg) => {
      // RTCP PLI/FIR from the server: the next frame is a keyframe.
      if (msg.length >= 2 && msg[1] === 206 && ((msg[0]! & 0x1f) === 1 || (msg[0]! & 0x1f) === 4)) this.keyframeWanted = true;
    });
  }

  /** The offer's SDP (the first one, or a fresh one for a renegotiation). */
  async offer(): Promise<string> {
    const next = this.nextDescription();
    this.pc.setLocalDescription();
    return next;
  }

  setAnswer(sdp: string): void {
    this.pc.setRemoteDescription(sdp, 'answer');
  }

  /** Sends one small VP8 frame every 20 ms (a keyframe first, and when asked for one). */
  startMedia(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.frame(), 20);
  }

  private frame(): void {
    if (!this.track.isOpen()) return;
    const key = this.keyframeWanted || this.picture % 50 === 0;
    this.keyframeWanted = false;
    // VP8 payload descriptor (X, S, I with a 15-bit picture id), then a frame tag;
    // a keyframe has P=0, the start code 9d 01 2a and a 64x48 size.
    const head = key
      ? [0x90, 0x80, 0x80 | (this.picture >> 8), this.picture & 0xff, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x00, 0x30, 0x00]
      : [0x90, 0x80, 0x80 | (this.picture >> 8), this.picture & 0xff, 0x31, 0x02, 0x00];
    const b = Buffer.alloc(200);
    b[0] = 0x80;
    b[1] = 0x80 | VP8_PT; // one packet per frame: marker set
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE(this.ts, 4);
    b.writeUInt32BE(this.ssrc, 8);
    b.set(head, RTP_HEADER);
    if (this.track.sendMessageBinary(b)) this.sent++;
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + 1800) >>> 0;
    this.picture = (this.picture + 1) & 0x7fff;
  }

  override close(): void {
    clearInterval(this.timer);
    super.close();
  }
}

/** The receiving side of one down-stream: answers the server's offer and counts RTP. */
export class Subscriber extends Peer {
  packets = 0;
  private readonly tracks: unknown[] = [];

  constructor(name: string) {
    super(name);
    this.pc.onTrack((track) => {
      // Keep the track object: once collected, its callbacks stop.
      this.tracks.push(track);
      track.onMessage((msg) => {
        if (msg.length >= RTP_HEADER && !(msg[1]! >= 200 && msg[1]! <= 207)) this.packets++;
      });
    });
  }

  async answer(offerSdp: string): Promise<string> {
    const next = this.nextDescription();
    this.pc.setRemoteDescription(offerSdp, 'offer');
    return next;
  }
}

/** Ends libdatachannel's threads, so the process can exit; call once, after the last peer. */
export function cleanupPeers(): void {
  ndc.cleanup();
}
