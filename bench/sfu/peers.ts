// Synthetic Galène peers on node-datachannel (libdatachannel: native ICE,
// DTLS and SRTP, so a peer costs the load generator little JavaScript).
//
// A publisher offers one sendonly VP8 track and sends RTP it makes itself at
// a fixed packet rate: ~1100-byte packets shaped like VP8 (RFC 7741 payload
// descriptor with a 15-bit picture id, frames of several packets with the
// marker bit on the last, a keyframe header with the 9d 01 2a start code and
// 640×480 on keyframes). It sends a keyframe first, on every PLI the server
// forwards, and every `keyframeEveryMs` as a fallback.
//
// A subscriber sends Galène's `request` and answers each server offer; for
// each down-stream it counts RTP packets, detects loss from gaps in the
// (rewritten) sequence numbers and records when the first packet arrived.
//
// The same peers speak to Janus's VideoRoom instead (`--compare janus`): a
// publisher joins as a VideoRoom publisher and sends its offer with
// `publish`; a subscriber subscribes to every publisher of the room, one
// handle and one peer connection per publisher (as a Galène subscriber gets
// one down-stream per publisher), and answers with `start`.
import { performance } from 'node:perf_hooks';
import ndc from 'node-datachannel';
import { GaleneSocket, candidateInit, type GaleneMessage } from './galene.ts';
import { JanusClient } from './janus.ts';

/** The SFU a peer talks to: Atrium through its Galène dialect, or Janus's VideoRoom. */
export type SfuTarget = { kind: 'galene'; url: string; group: string } | { kind: 'janus'; url: string; room: number };
type Candidate = { candidate: string; sdpMid: string; sdpMLineIndex: number };

const BIND = '127.0.0.1';
const VP8_PT = 96;
const CLOCK = 90_000;
const RTP_HEADER = 12;

/** Set to true by the caller when SIGTERM arrives, to skip late callbacks. */
let stopping = false;
export function stopPeers(): void {
  stopping = true;
}

export interface PublisherOptions {
  target: SfuTarget;
  name: string;
  /** RTP packets per second. */
  rate: number;
  /** Size of each RTP packet, header included. */
  packetSize: number;
  /** Packets per video frame (marker bit on the last). */
  packetsPerFrame: number;
  keyframeEveryMs: number;
  /** The first RTP sequence number (default: random); a value near 65535 makes the 16-bit wrap come early. */
  firstSeq?: number | undefined;
}

export class Publisher {
  readonly galene = new GaleneSocket();
  readonly janus = new JanusClient();
  readonly streamId = `up-${Math.random().toString(36).slice(2, 10)}`;
  readonly ssrc = (Math.random() * 0xffffffff) >>> 0;
  pc: InstanceType<typeof ndc.PeerConnection> | undefined;
  track: ReturnType<InstanceType<typeof ndc.PeerConnection>['addTrack']> | undefined;
  sent = 0;
  sendFailures = 0;
  /** The track closed after it had opened: this publisher sends no more. */
  trackClosed = false;
  plis = 0;
  keyframes = 0;
  #seq: number;
  #ts = (Math.random() * 0xffffffff) >>> 0;
  #pictureId = Math.floor(Math.random() * 0x8000);
  #inFrame = 0;
  #wantKeyframe = true;
  #lastKeyframe = 0;
  #templates: { key: Buffer; delta: Buffer; cont: Buffer };
  #open: Promise<void>;

  constructor(readonly o: PublisherOptions) {
    this.#seq = (o.firstSeq ?? Math.floor(Math.random() * 0x10000)) & 0xffff;
    const payload = o.packetSize - RTP_HEADER;
    const make = (head: number[]) => {
      const b = Buffer.alloc(o.packetSize);
      b[0] = 0x80; // V=2
      b.set(head, RTP_HEADER);
      for (let i = RTP_HEADER + head.length; i < o.packetSize; i++) b[i] = (i * 31) & 0xff;
      return b;
    };
    if (payload < 20) throw new Error(`packet size ${o.packetSize} is too small for a VP8-shaped payload; use at least 32 bytes`);
    // Payload descriptor: X=1 S=1 PID=0 | I=1 | 15-bit picture id (filled per packet).
    // Keyframe: frame tag with P=0, start code 9d 01 2a, width 640, height 480.
    this.#templates = {
      key: make([0x90, 0x80, 0x80, 0x00, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]),
      delta: make([0x90, 0x80, 0x80, 0x00, 0x31, 0x02, 0x00]),
      cont: make([0x80, 0x80, 0x80, 0x00]),
    };
    let opened!: () => void;
    this.#open = new Promise<void>((r) => (opened = r));
    this.#opened = opened;
  }
  #opened: () => void;

  get errors(): string[] {
    return this.o.target.kind === 'janus' ? this.janus.errors : this.galene.errors;
  }

  /** Joins, publishes, and resolves once the track is open (ICE + DTLS done). */
  async start(): Promise<void> {
    const pc = new ndc.PeerConnection(this.o.name, { iceServers: [], bindAddress: BIND });
    this.pc = pc;
    const video = new ndc.Video('0', 'SendOnly');
    video.addVP8Codec(VP8_PT);
    video.addSSRC(this.ssrc, `cname-${this.streamId}`, this.streamId, `${this.streamId}-video`);
    const track = pc.addTrack(video);
    this.track = track;
    track.onOpen(() => this.#opened());
    track.onMessage((msg) => this.#rtcp(msg));
    if (this.o.target.kind === 'janus') await this.#signalJanus(pc, this.o.target);
    else await this.#signalGalene(pc, this.o.target);
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`publisher ${this.o.name}: track not open within 20 s (ICE/DTLS with the server failed; errors: ${this.errors.join('; ') || 'none'})`)), 20_000).unref(),
    );
    await Promise.race([this.#open, timeout]);
  }

  async #signalGalene(pc: InstanceType<typeof ndc.PeerConnection>, t: SfuTarget & { kind: 'galene' }): Promise<void> {
    const g = this.galene;
    await g.join(t.url, t.group, this.o.name);
    // Our candidates wait for the server's answer: until it has handled the
    // offer, the stream id is unknown to it.
    let held: Candidate[] | undefined = [];
    pc.onLocalCandidate((c, mid) => {
      if (held) held.push(candidateInit(c, mid));
      else g.send({ type: 'ice', id: this.streamId, candidate: candidateInit(c, mid) });
    });
    g.on((m: GaleneMessage) => {
      if (stopping) return;
      if (m.type === 'answer' && m.id === this.streamId) {
        pc.setRemoteDescription(String(m.sdp), 'answer');
        for (const c of held ?? []) g.send({ type: 'ice', id: this.streamId, candidate: c });
        held = undefined;
      } else if (m.type === 'ice' && m.id === this.streamId) {
        const c = m.candidate as { candidate?: string; sdpMid?: string } | undefined;
        if (c?.candidate) pc.addRemoteCandidate(c.candidate, c.sdpMid ?? '0');
      } else if (m.type === 'abort' && m.id === this.streamId) g.errors.push(`server aborted stream ${this.streamId}`);
    });
    pc.onLocalDescription((sdp, type) => {
      if (type === 'offer') g.send({ type: 'offer', id: this.streamId, label: 'camera', source: g.id, username: this.o.name, sdp });
    });
    pc.setLocalDescription();
  }

  async #signalJanus(pc: InstanceType<typeof ndc.PeerConnection>, t: SfuTarget & { kind: 'janus' }): Promise<void> {
    const j = this.janus;
    await j.connect(t.url, `publisher ${this.o.name}`);
    const handle = await j.attach();
    await j.message(handle, { request: 'join', ptype: 'publisher', room: t.room, display: this.o.name });
    // Trickled candidates wait for Janus's answer, as with Galène.
    let held: (Candidate | null)[] | undefined = [];
    const send = (c: Candidate | null) => (held ? held.push(c) : j.trickle(handle, c));
    pc.onLocalCandidate((c, mid) => send(candidateInit(c, mid)));
    pc.onGatheringStateChange((state) => {
      if (state === 'complete') send(null);
    });
    const offer = await new Promise<string>((resolve) => {
      pc.onLocalDescription((sdp, type) => {
        if (type === 'offer') resolve(sdp);
      });
      pc.setLocalDescription();
    });
    const reply = await j.message(handle, { request: 'publish' }, { type: 'offer', sdp: offer });
    if (reply.jsep?.type !== 'answer') throw new Error(`publisher ${this.o.name}: Janus answered "publish" without an SDP answer: ${JSON.stringify(reply.data)}`);
    pc.setRemoteDescription(reply.jsep.sdp, 'answer');
    for (const c of held) j.trickle(handle, c);
    held = undefined;
  }

  /** RTCP from the server: a PLI (PT 206, FMT 1) or FIR (FMT 4) asks for a keyframe. */
  #rtcp(msg: Buffer): void {
    let i = 0;
    while (i + 4 <= msg.length) {
      const fmt = msg[i]! & 0x1f;
      const pt = msg[i + 1]!;
      const len = (msg.readUInt16BE(i + 2) + 1) * 4;
      if (pt === 206 && (fmt === 1 || fmt === 4)) {
        this.plis++;
        this.#wantKeyframe = true;
      }
      if (pt < 200 || pt > 207) return; // not RTCP (compound ends)
      i += len;
    }
  }

  /** Sends one packet; called by the pacer. */
  sendOne(now: number): void {
    const t = this.track;
    if (!t) return;
    let tpl: Buffer;
    if (this.#inFrame === 0) {
      if (!this.#wantKeyframe && now - this.#lastKeyframe >= this.o.keyframeEveryMs) this.#wantKeyframe = true;
      if (this.#wantKeyframe) {
        this.#wantKeyframe = false;
        this.#lastKeyframe = now;
        this.keyframes++;
        tpl = this.#templates.key;
      } else tpl = this.#templates.delta;
    } else tpl = this.#templates.cont;
    const last = this.#inFrame === this.o.packetsPerFrame - 1;
    tpl[1] = (last ? 0x80 : 0) | VP8_PT;
    tpl.writeUInt16BE(this.#seq, 2);
    tpl.writeUInt32BE(this.#ts, 4);
    tpl.writeUInt32BE(this.ssrc, 8);
    tpl[RTP_HEADER + 2] = 0x80 | (this.#pictureId >> 8);
    tpl[RTP_HEADER + 3] = this.#pictureId & 0xff;
    // libdatachannel copies the buffer, so the template can be reused.
    try {
      if (t.sendMessageBinary(tpl)) this.sent++;
      else this.sendFailures++;
    } catch {
      // The track closed under us (the peer connection failed, e.g. ICE on a loaded machine): the publisher stops; its owner may start another.
      this.sendFailures++;
      this.track = undefined;
      this.trackClosed = true;
      return;
    }
    this.#seq = (this.#seq + 1) & 0xffff;
    if (last) {
      this.#inFrame = 0;
      this.#pictureId = (this.#pictureId + 1) & 0x7fff;
      this.#ts = (this.#ts + Math.round((CLOCK * this.o.packetsPerFrame) / this.o.rate)) >>> 0;
    } else this.#inFrame++;
  }

  close(): void {
    try {
      this.pc?.close();
    } catch {
      /* already closed */
    }
    this.galene.close();
    this.janus.close();
  }
}

/** Sends every publisher's packets at its rate from one timer; returns a stop function. */
export function pace(pubs: Publisher[], tickMs = 2): () => void {
  const start = performance.now();
  const slots = pubs.map(() => 0);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    const elapsed = (now - start) / 1000;
    pubs.forEach((p, i) => {
      const due = Math.floor(elapsed * p.o.rate) - slots[i]!;
      // After a stall, send at most 50 ms worth at once; the rest is skipped
      // (it shows as a lower sent rate, never as a burst).
      const n = Math.min(due, Math.max(1, Math.ceil(p.o.rate * 0.05)));
      for (let k = 0; k < n; k++) p.sendOne(now);
      slots[i]! += Math.max(0, due);
    });
    timer = setTimeout(tick, tickMs);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** What one subscriber saw of one down-stream. */
export interface DownCounters {
  id: string;
  offerAt: number;
  /** ICE + DTLS done (peer connection 'connected'), -1 before. */
  connectedAt: number;
  firstAt: number;
  packets: number;
  /** Packets expected from the first to the highest (extended) sequence number. */
  expected: number;
  rtcp: number;
}

class DownState implements DownCounters {
  offerAt: number;
  connectedAt = -1;
  firstAt = -1;
  readonly tracks: unknown[] = [];
  packets = 0;
  expected = 0;
  rtcp = 0;
  /** The sequence number of the newest packet, as it arrived (-1 before the first). */
  lastSeq = -1;
  #base = -1;
  #highest = 0; // extended
  constructor(readonly id: string) {
    this.offerAt = performance.now();
  }
  onMessage(msg: Buffer): void {
    if (msg.length < RTP_HEADER) return;
    const pt = msg[1]!;
    if (pt >= 200 && pt <= 207) {
      this.rtcp++;
      return;
    }
    const seq = msg.readUInt16BE(2);
    if (this.#base < 0) {
      this.firstAt = performance.now();
      this.#base = seq;
      this.#highest = seq;
    } else {
      // extend to 32 bits relative to the highest seen
      const cur = this.#highest & 0xffff;
      let d = (seq - cur) & 0xffff;
      if (d >= 0x8000) d -= 0x10000;
      if (d > 0) this.#highest += d;
    }
    this.packets++;
    this.lastSeq = seq;
    this.expected = this.#highest - this.#base + 1;
  }
}

export interface SubscriberOptions {
  target: SfuTarget;
  name: string;
  /** Publishers in the room: a Janus subscriber waits until the room lists them all. */
  publishers: number;
}

export class Subscriber {
  readonly galene = new GaleneSocket();
  readonly janus = new JanusClient();
  readonly downs = new Map<string, DownState>();
  readonly pcs = new Map<string, InstanceType<typeof ndc.PeerConnection>>();
  requestAt = -1;

  constructor(readonly o: SubscriberOptions) {}

  get errors(): string[] {
    return this.o.target.kind === 'janus' ? this.janus.errors : this.galene.errors;
  }

  async start(): Promise<void> {
    if (this.o.target.kind === 'janus') return this.#startJanus(this.o.target);
    const g = this.galene;
    await g.join(this.o.target.url, this.o.target.group, this.o.name);
    g.on((m) => {
      if (stopping) return;
      if (m.type === 'offer') {
        const id = String(m.id);
        this.#offer(id, String(m.sdp), {
          answer: (sdp) => g.send({ type: 'answer', id, sdp }),
          candidate: (c) => c && g.send({ type: 'ice', id, candidate: c }),
        });
      } else if (m.type === 'ice') {
        const pc = this.pcs.get(String(m.id));
        const c = m.candidate as { candidate?: string; sdpMid?: string } | undefined;
        if (pc && c?.candidate) pc.addRemoteCandidate(c.candidate, c.sdpMid ?? '0');
      } else if (m.type === 'close') {
        const pc = this.pcs.get(String(m.id));
        this.pcs.delete(String(m.id));
        pc?.close();
      }
    });
    this.requestAt = performance.now();
    g.send({ type: 'request', request: { '': ['audio', 'video'] } });
  }

  /** Subscribes to every publisher of the room: one handle, `join` as subscriber, `start` with the answer. */
  async #startJanus(t: SfuTarget & { kind: 'janus' }): Promise<void> {
    const j = this.janus;
    await j.connect(t.url, `subscriber ${this.o.name}`);
    const lister = await j.attach();
    this.requestAt = performance.now();
    const deadline = Date.now() + 30_000;
    let feeds: number[] = [];
    for (;;) {
      const r = await j.message(lister, { request: 'listparticipants', room: t.room });
      const list = (r.data.participants as { id: number; publisher?: boolean }[] | undefined) ?? [];
      feeds = list.filter((p) => p.publisher).map((p) => p.id);
      if (feeds.length >= this.o.publishers) break;
      if (Date.now() > deadline) throw new Error(`subscriber ${this.o.name}: Janus room ${t.room} lists ${feeds.length} of ${this.o.publishers} publishers after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(
      feeds.map(async (feed) => {
        const handle = await j.attach();
        const r = await j.message(handle, { request: 'join', ptype: 'subscriber', room: t.room, streams: [{ feed }] });
        if (r.jsep?.type !== 'offer') throw new Error(`subscriber ${this.o.name}: Janus's "attached" for feed ${feed} came without an SDP offer`);
        const id = `feed-${feed}`;
        this.#offer(id, r.jsep.sdp, {
          answer: (sdp) => {
            j.message(handle, { request: 'start' }, { type: 'answer', sdp }).catch((e: Error) => j.errors.push(e.message));
          },
          candidate: (c) => j.trickle(handle, c),
        });
      }),
    );
  }

  #offer(id: string, sdp: string, signal: { answer: (sdp: string) => void; candidate: (c: Candidate | null) => void }): void {
    let pc = this.pcs.get(id);
    if (!pc) {
      const down = new DownState(id);
      this.downs.set(id, down);
      pc = new ndc.PeerConnection(`${this.o.name}-${id}`, { iceServers: [], bindAddress: BIND });
      this.pcs.set(id, pc);
      pc.onTrack((track) => {
        // Keep the track: if its JavaScript object is collected, node-datachannel
        // drops its callbacks and the packets silently stop.
        down.tracks.push(track);
        track.onMessage((msg) => down.onMessage(msg));
      });
      pc.onStateChange((state) => {
        if (state === 'connected' && down.connectedAt < 0) down.connectedAt = performance.now();
      });
      // libdatachannel may report a candidate before the answer; the server
      // must see the answer first, so candidates wait for it.
      let held: (Candidate | null)[] | undefined = [];
      const send = (c: Candidate | null) => (held ? held.push(c) : signal.candidate(c));
      pc.onLocalCandidate((c, mid) => send(candidateInit(c, mid)));
      pc.onGatheringStateChange((state) => {
        if (state === 'complete') send(null);
      });
      pc.onLocalDescription((answer, type) => {
        if (type !== 'answer') return;
        signal.answer(answer);
        for (const c of held ?? []) signal.candidate(c);
        held = undefined;
      });
    }
    pc.setRemoteDescription(sdp, 'offer');
  }

  counters(): DownCounters[] {
    return [...this.downs.values()].map((d) => ({ id: d.id, offerAt: d.offerAt, connectedAt: d.connectedAt, firstAt: d.firstAt, packets: d.packets, expected: d.expected, rtcp: d.rtcp }));
  }

  close(): void {
    for (const pc of this.pcs.values()) {
      try {
        pc.close();
      } catch {
        /* already closed */
      }
    }
    this.galene.close();
    this.janus.close();
  }
}
