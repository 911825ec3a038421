// Runs inside the test pages: a small application written against the
// @atrium/client SDK the way seed 003 shows (callbacks set on a
// ServerConnection, `c.pc.addTrack(t, c.stream)`), which records every
// callback with all its arguments so the tests can check them. The SDK is
// imported from the built bundle the page serves at /atrium-client.js.
import { ServerConnection, type Credentials, type ReconnectOptions, type Stream, type StreamRequest, type TransferredFile } from '@atrium/client';

/** One recorded callback: its name, then its arguments as JSON-friendly values. */
export type Entry = [name: string, ...args: unknown[]];

export interface DownInfo {
  id: string;
  localId: string;
  label: string;
  source: string | null;
  username: string | null;
  closed: boolean;
  /** onclose's argument. */
  replaced: boolean | null;
  /** Kinds of the tracks ondowntrack reported, with the number of arguments it got. */
  tracks: { kind: string; argc: number; sameStream: boolean }[];
  statuses: string[];
  /** Offers from the server answered (first negotiation and renegotiations). */
  negotiations: number;
  framesDecoded?: number;
  frameWidth?: number;
  totalSamplesReceived?: number;
  audioEnergy?: number;
}

export interface UpInfo {
  id: string;
  localId: string;
  label: string;
  closed: boolean;
  replaced: boolean | null;
  statuses: string[];
  negotiations: number;
  /** pc.connectionState of the current peer connection. */
  state: string;
  /** The highest rate (bit/s) seen in `stats`, per track key. */
  rates: Record<string, number>;
  /** How many distinct peer connections this Stream object has had. */
  pcs: number;
}

export interface FileRecord {
  up: boolean;
  id: string;
  name: string;
  size: number;
  mimetype: string;
  userid: string;
  username: string | undefined;
  states: string[];
  /** Progress seen in `connected` events (datalen values). */
  progress: number[];
  sha256?: string;
  blobSize?: number;
  blobType?: string;
  cancelMessage?: string;
}

const toJson = (v: unknown): unknown => {
  if (v instanceof Date) return { date: v.toISOString() };
  if (v === undefined) return { undefined: true };
  if (v instanceof Error) return { error: v.message };
  return v;
};

async function sha256(data: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Deterministic pseudo-random bytes, so both sides can be compared by hash. */
function bytes(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export class Harness {
  sc: ServerConnection;
  readonly log: Entry[] = [];
  readonly downs = new Map<string, { stream: Stream; info: DownInfo }>();
  readonly ups = new Map<string, { stream: Stream; info: UpInfo; pcs: Set<RTCPeerConnection> }>();
  readonly files: FileRecord[] = [];
  readonly errors: string[] = [];
  /** What to do with incoming files: accept, or refuse with a message. */
  fileAnswer: { accept: true } | { accept: false; message: string } = { accept: true };
  private media: MediaStream | null = null;

  constructor(options: { reconnect?: boolean | ReconnectOptions } = {}) {
    this.sc = this.makeConnection(options);
  }

  private record(name: string, args: IArguments | unknown[]): void {
    this.log.push([name, ...Array.from(args, toJson)]);
  }

  private makeConnection(options: { reconnect?: boolean | ReconnectOptions }): ServerConnection {
    const h = this;
    const sc = new ServerConnection(options.reconnect === undefined ? {} : { reconnect: options.reconnect });
    sc.onconnected = function () {
      h.record('onconnected', arguments);
    };
    sc.onclose = function (code, reason) {
      h.record('onclose', [code, reason, arguments.length]);
    };
    sc.onerror = function (e) {
      h.errors.push(e instanceof Error ? `${(e as { code?: string }).code ?? 'error'}: ${e.message}` : String(e));
    };
    sc.onjoined = function (kind, group, perms, status, data, error, message) {
      h.record('onjoined', arguments);
      void kind, group, perms, status, data, error, message;
    };
    sc.onuser = function (id, kind) {
      h.record('onuser', [id, kind, arguments.length, this.users[id] ? { ...this.users[id] } : null]);
    };
    sc.onchat = function (id, dest, username, time, privileged, history, kind, message) {
      h.record('onchat', arguments);
      void id, dest, username, time, privileged, history, kind, message;
    };
    sc.onusermessage = function (id, dest, username, time, privileged, kind, error, message) {
      h.record('onusermessage', arguments);
      void id, dest, username, time, privileged, kind, error, message;
    };
    sc.onclearchat = function () {
      h.record('onclearchat', arguments);
    };
    sc.onreconnecting = function (attempt, delayMs, code, reason) {
      h.record('onreconnecting', [attempt, delayMs, code, reason]);
    };
    sc.onreconnected = function () {
      h.record('onreconnected', arguments);
    };
    sc.ondownstream = function (stream) {
      h.record('ondownstream', [stream.id, stream.label, stream.source, stream.username, arguments.length]);
      h.watchDown(stream);
    };
    sc.onfiletransfer = function (f) {
      h.watchFile(f);
    };
    return sc;
  }

  /** Connects and joins, seed-style (`join` from `onconnected`); resolves with onjoined's arguments. */
  connect(endpoint: string, group: string, username: string, credentials: Credentials, form: 'modern' | 'readme' = 'modern'): Promise<unknown[]> {
    return new Promise((resolve) => {
      const sc = this.sc;
      const h = this;
      const previous = sc.onjoined;
      sc.onconnected = function () {
        h.record('onconnected', arguments);
        if (form === 'readme') void this.join(group, 'join', username, credentials);
        else void this.join(group, username, credentials);
      };
      sc.onjoined = function (kind, ...rest) {
        previous?.call(this, kind, ...rest);
        if (kind === 'join' || kind === 'fail') {
          sc.onjoined = previous;
          resolve([kind, ...rest].map(toJson));
        }
      };
      sc.connect(endpoint);
    });
  }

  /** Entries of the log with this callback name. */
  entries(name: string): Entry[] {
    return this.log.filter((e) => e[0] === name);
  }

  // ------------------------------------------------------------------ media

  private watchDown(stream: Stream): void {
    const info: DownInfo = {
      id: stream.id,
      localId: stream.localId,
      label: stream.label,
      source: stream.source,
      username: stream.username,
      closed: false,
      replaced: null,
      tracks: [],
      statuses: [],
      negotiations: 0,
    };
    this.downs.set(stream.id, { stream, info });
    stream.onnegotiationcompleted = function () {
      info.negotiations += 1;
    };
    stream.onclose = function (replace) {
      info.closed = true;
      info.replaced = replace;
    };
    stream.onerror = (e) => this.errors.push(`down ${stream.id}: ${String(e)}`);
    stream.onstatus = function (status) {
      info.statuses.push(status);
    };
    stream.ondowntrack = function (track, transceiver, s) {
      info.tracks.push({ kind: track.kind, argc: arguments.length, sameStream: s === this.stream && transceiver.receiver.track === track });
      // Play what arrives, as an application would, so video is decoded.
      const id = `media-${this.id}-${track.kind}`;
      let el = document.getElementById(id) as HTMLMediaElement | null;
      if (!el) {
        el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
        el.id = id;
        el.autoplay = true;
        el.muted = true;
        document.body.appendChild(el);
      }
      el.srcObject = s;
    };
    stream.onstats = function (stats) {
      for (const s of Object.values(stats)) {
        const energy = s['inbound-rtp']?.audioEnergy;
        if (energy !== undefined) info.audioEnergy = energy;
      }
    };
    stream.setStatsInterval(500);
  }

  async downStats(): Promise<DownInfo[]> {
    const out: DownInfo[] = [];
    for (const { stream, info } of this.downs.values()) {
      if (!info.closed) {
        const report = await stream.pc.getStats();
        report.forEach((v: { type: string; kind?: string; framesDecoded?: number; frameWidth?: number; totalSamplesReceived?: number }) => {
          if (v.type !== 'inbound-rtp') return;
          if (v.kind === 'video') {
            info.framesDecoded = v.framesDecoded ?? 0;
            info.frameWidth = v.frameWidth ?? 0;
          } else if (v.kind === 'audio') {
            info.totalSamplesReceived = v.totalSamplesReceived ?? 0;
          }
        });
      }
      out.push({ ...info, tracks: [...info.tracks], statuses: [...info.statuses] });
    }
    return out;
  }

  /** Asks the server what to send us. */
  request(what: StreamRequest): void {
    this.sc.request(what);
  }

  /**
   * Publishes the fake camera (and microphone) as seed 003 shows:
   * `newUpStream`, a label, then `c.pc.addTrack(t, c.stream)` for each
   * track, or `c.addTrack(t, {simulcast: true})`. Returns the localId.
   */
  async publish(opts: { label?: string; audio?: boolean; simulcast?: boolean; replace?: string; width?: number } = {}): Promise<{ id: string; localId: string }> {
    const media = await navigator.mediaDevices.getUserMedia({ audio: opts.audio ?? true, video: { width: opts.width ?? 640, height: ((opts.width ?? 640) * 3) / 4 } });
    this.media = media;
    const c = this.sc.newUpStream(opts.replace);
    c.label = opts.label ?? 'camera';
    this.watchUp(c);
    c.setStream(media);
    media.getTracks().forEach((t) => {
      if (opts.simulcast) c.addTrack(t, { simulcast: true, lowScale: 4 });
      else c.pc.addTrack(t, c.stream);
    });
    return { id: c.id, localId: c.localId };
  }

  /** Adds the microphone to an existing up-stream (renegotiation). */
  async addAudio(localId: string): Promise<void> {
    const c = this.sc.findByLocalId(localId);
    if (!c) throw new Error(`no up-stream ${localId}`);
    const media = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const t of media.getAudioTracks()) {
      c.stream.addTrack(t);
      c.pc.addTrack(t, c.stream);
    }
  }

  private watchUp(c: Stream): void {
    const pcs = new Set<RTCPeerConnection>([c.pc]);
    const info: UpInfo = { id: c.id, localId: c.localId, label: c.label, closed: false, replaced: null, statuses: [], negotiations: 0, state: 'new', rates: {}, pcs: 1 };
    this.ups.set(c.id, { stream: c, info, pcs });
    c.onclose = function (replace) {
      info.closed = true;
      info.replaced = replace;
    };
    c.onerror = (e) => this.errors.push(`up ${c.id}: ${String(e)}`);
    c.onstatus = function (status) {
      info.statuses.push(status);
    };
    c.onnegotiationcompleted = function () {
      info.negotiations += 1;
      pcs.add(this.pc);
    };
    c.onstats = function (stats) {
      for (const [key, s] of Object.entries(stats)) {
        const rate = s['outbound-rtp']?.rate;
        if (rate !== undefined) info.rates[key] = Math.max(info.rates[key] ?? 0, rate);
      }
    };
    c.setStatsInterval(500);
  }

  ups_(): UpInfo[] {
    return [...this.ups.values()].map(({ stream, info, pcs }) => ({ ...info, state: stream.pc.connectionState, pcs: pcs.size, statuses: [...info.statuses] }));
  }

  closeUp(localId: string): void {
    this.sc.findByLocalId(localId)?.close();
  }

  /** Down-streams: what this one stream should carry (`requestStream`). */
  requestDown(id: string, what: ('audio' | 'video' | 'video-low')[] | null): void {
    this.downs.get(id)?.stream.request(what);
  }

  abortDown(id: string): void {
    this.downs.get(id)?.stream.abort();
  }

  /** Kinds of media this user's entry in `users` says a user sends. */
  userStreams(id: string): Record<string, Record<string, boolean>> | null {
    return this.sc.users[id]?.streams ?? null;
  }

  // ------------------------------------------------------------------ files

  private watchFile(f: TransferredFile): void {
    const rec: FileRecord = { up: f.up, id: f.id, name: f.name, size: f.size, mimetype: f.mimetype, userid: f.userid, username: f.username, states: [], progress: [] };
    this.files.push(rec);
    f.onevent = function (state, data) {
      rec.states.push(state);
      if (state === 'connected' && data && typeof data === 'object' && 'datalen' in data) rec.progress.push(data.datalen);
      if (state === 'cancelled') rec.cancelMessage = data instanceof Error ? data.message : String(data);
      if (state === 'done' && data instanceof Blob) {
        rec.blobSize = data.size;
        rec.blobType = data.type;
        void data
          .arrayBuffer()
          .then(sha256)
          .then((h) => (rec.sha256 = h));
      }
    };
    if (f.up) return;
    if (this.fileAnswer.accept) void f.receive();
    else f.cancel(this.fileAnswer.message);
  }

  /** Sends `size` pseudo-random bytes to `userId`; returns their SHA-256. */
  async sendFile(userId: string, size: number, seed: number, name = 'random.bin'): Promise<string> {
    const data = bytes(size, seed);
    const file = new File([data], name, { type: 'application/octet-stream' });
    this.sc.sendFile(userId, file);
    return sha256(data.buffer);
  }

  /** Drops the WebSocket abnormally from the page's side (as a network failure would). */
  dropSocket(): void {
    const ws = this.sc.socket;
    ws?.close(4500, 'test: socket dropped by the page');
  }

  stopMedia(): void {
    for (const t of this.media?.getTracks() ?? []) t.stop();
  }
}

declare global {
  interface Window {
    Harness: typeof Harness;
    h: Harness;
  }
}
window.Harness = Harness;
