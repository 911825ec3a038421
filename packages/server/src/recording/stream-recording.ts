// The recording of one published stream to one file: taps on its audio
// track and its video track (every simulcast layer), a jitter buffer and an
// RTP clock per layer, and the file. The video follows the best layer the
// publisher sends: when that layer stops (the publisher dropped it) the
// recording moves to the next one at its next keyframe, and back up the
// same way. Audio and video share one timeline (clock.ts); the file starts
// with the first frame written, so the sound of the first moments is kept
// while the first video keyframe is on its way.
import type { CodecName, PacketBatch, TrackTap, UpTrack } from '../media/engine.ts';
import type { PublishedStream } from '../core/client.ts';
import { isKeyframe, keyframeInfo } from './codecs.ts';
import { RtpClock, SyncClock, TrackTimeline, opusPacketMs } from './clock.ts';
import { type FileTrackInfo, type MuxFrame, RecordingFile, type VideoConfig } from './file.ts';
import { type Frame, JitterBuffer } from './jitter.ts';

const RECORDABLE: ReadonlySet<CodecName> = new Set(['vp8', 'vp9', 'h264', 'opus']);
/** A layer with no packet for this long has stopped: the recording moves to another. */
const LAYER_IDLE_MS = 1000;
/** While waiting for a keyframe, ask again this often. */
const KEYFRAME_RETRY_MS = 1000;
/** A video frame's duration when nothing follows it (the last one). */
const LAST_FRAME_S = 1 / 30;

export interface StreamRecordingEnv {
  dir: string;
  /** File name without extension: `<time>-<username>[-<label>]`. */
  baseName: string;
  onBytes(n: number): void;
  /** Writing failed: the recording of this stream is over (the caller decides about the others). */
  onError(err: Error, file: string | undefined): void;
  /** Something the operators should know (a track that cannot be recorded…). */
  warn(text: string): void;
}

interface Layer {
  jitter: JitterBuffer;
  clock: RtpClock;
  /** Arrival of its newest packet. */
  last: number;
}

class VideoTrack {
  readonly layers: Layer[];
  /** The layer written (-1: none yet). */
  current = -1;
  lastKeyframeAsk = 0;
  /** Delay-by-one: a frame waits for the next to know its duration. */
  held: { frame: MuxFrame; config?: VideoConfig } | undefined;
  config: VideoConfig | undefined;
  readonly timeline = new TrackTimeline(1000 / 30);

  constructor(
    readonly track: UpTrack,
    readonly codec: CodecName,
    onLoss: (layer: number) => void,
  ) {
    const n = Math.max(1, track.layers.length);
    const rate = track.parameters?.clockRate ?? 90000;
    this.layers = Array.from({ length: n }, (_, i) => ({ jitter: new JitterBuffer({ codec, onLoss: () => onLoss(i) }), clock: new RtpClock(rate), last: 0 }));
  }

  layer(i: number): Layer {
    // a layer the publisher added after the answer
    while (this.layers.length <= i) this.layers.push({ jitter: new JitterBuffer({ codec: this.codec }), clock: new RtpClock(this.layers[0]!.clock.clockRate), last: 0 });
    return this.layers[i]!;
  }

  /** The layer to record: the best one that is sending. */
  wanted(now: number): number {
    for (let i = 0; i < this.layers.length; i++) if (now - this.layers[i]!.last < LAYER_IDLE_MS) return i;
    return this.current;
  }
}

export class StreamRecording {
  readonly #env: StreamRecordingEnv;
  readonly #sync = new SyncClock();
  readonly #taps: TrackTap[] = [];
  #video: VideoTrack | undefined;
  #audio: { track: UpTrack; jitter: JitterBuffer; clock: RtpClock; channels: number; timeline: TrackTimeline } | undefined;
  #file: RecordingFile | undefined;
  #opening: Promise<void> | undefined;
  /** Server-clock time (ms) of the file's 0. */
  #origin: number | undefined;
  /** Writes happen one after the other; the taps wait on this. */
  #writing: Promise<void> = Promise.resolve();
  #stopped = false;
  #failed = false;
  #closing: Promise<string | undefined> | undefined;

  constructor(
    readonly stream: PublishedStream,
    env: StreamRecordingEnv,
  ) {
    this.#env = env;
  }

  get file(): string | undefined {
    return this.#file?.name;
  }

  /** Picks the tracks (one audio, one video), opens the file and attaches the taps. */
  start(): Promise<void> {
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<void> {
    const tracks: FileTrackInfo[] = [];
    for (const t of this.stream.up.tracks) {
      const codec = t.codec;
      if (!codec || !RECORDABLE.has(codec)) {
        this.#env.warn(
          `stream "${this.stream.label}" of ${this.stream.owner.username ?? this.stream.owner.id}: its ${t.kind} codec ${t.parameters?.mimeType ?? codec ?? 'unknown'} cannot be recorded`,
        );
        continue;
      }
      if (t.kind === 'video') {
        if (this.#video) {
          this.#env.warn(`stream "${this.stream.label}" of ${this.stream.owner.username ?? this.stream.owner.id} has several video tracks; only the first is recorded`);
          continue;
        }
        this.#video = new VideoTrack(t, codec, (layer) => {
          if (layer === this.#video?.current) this.#askKeyframe(layer, Date.now(), true);
        });
        tracks.push({ kind: 'video', codec });
      } else {
        if (this.#audio) {
          this.#env.warn(`stream "${this.stream.label}" of ${this.stream.owner.username ?? this.stream.owner.id} has several audio tracks; only the first is recorded`);
          continue;
        }
        const channels = t.parameters?.channels ?? 2;
        this.#audio = { track: t, jitter: new JitterBuffer({ codec: 'opus' }), clock: new RtpClock(t.parameters?.clockRate ?? 48000), channels, timeline: new TrackTimeline(20) };
        tracks.push({ kind: 'audio', codec: 'opus', channels });
      }
    }
    if (tracks.length === 0) throw new Error(`stream "${this.stream.label}" has no track that can be recorded`);
    this.#file = await RecordingFile.create(this.#env.dir, this.#env.baseName, tracks, (n) => this.#env.onBytes(n));
    if (this.#stopped) return;
    if (this.#audio) this.#attach(this.#audio.track, (batch) => this.#audioBatch(batch));
    if (this.#video) {
      this.#attach(this.#video.track, (batch) => this.#videoBatch(batch));
      this.#askKeyframe(0, Date.now(), true);
    }
  }

  #attach(track: UpTrack, onBatch: (batch: PacketBatch) => void): void {
    try {
      this.#taps.push(
        track.attach({
          packets: (batch) => {
            if (this.#stopped) return;
            onBatch(batch);
            return this.#writing;
          },
          end: () => {},
        }),
      );
    } catch {
      // the stream ended meanwhile: unpublished() will stop us
    }
  }

  #askKeyframe(layer: number, now: number, force = false): void {
    const v = this.#video;
    if (!v || (!force && now - v.lastKeyframeAsk < KEYFRAME_RETRY_MS)) return;
    v.lastKeyframeAsk = now;
    for (const tap of this.#taps) if (tap.track === v.track) tap.requestKeyframe(layer);
  }

  #videoBatch(batch: PacketBatch): void {
    const v = this.#video!;
    for (const r of batch.senderReports) v.layer(r.layer).clock.report(r.rtpTimestamp, r.ntpTime);
    let now = 0;
    for (const p of batch.packets) {
      const layer = v.layer(p.layer);
      layer.last = p.arrival;
      now = Math.max(now, p.arrival);
      this.#sync.observe(layer.clock, layer.clock.unwrap(p.timestamp), p.arrival);
      for (const frame of layer.jitter.push(p)) this.#videoFrame(p.layer, frame);
    }
    if (now === 0) return;
    const wanted = v.wanted(now);
    if (wanted >= 0 && wanted !== v.current) this.#askKeyframe(wanted, now);
  }

  #videoFrame(layerIndex: number, frame: Frame): void {
    const v = this.#video!;
    const now = frame.arrival;
    if (layerIndex !== v.current) {
      // another layer: taken only at a keyframe, and only when it is the one wanted
      if (!frame.keyframe || !isKeyframe(v.codec, frame.data) || layerIndex !== v.wanted(now)) return;
      v.current = layerIndex;
    }
    const layer = v.layers[layerIndex]!;
    const unwrapped = layer.clock.unwrap(frame.timestamp);
    const time = this.#sync.time(layer.clock, unwrapped);
    if (time === undefined) return;
    let config: VideoConfig | undefined;
    if (!v.config) {
      const info = keyframeInfo(v.codec, frame.data);
      if (!info) {
        this.#env.warn(`stream "${this.stream.label}": the size of its first ${v.codec} keyframe could not be read; recording it as 640×480`);
      }
      config = v.config = info ?? { codecString: v.codec === 'vp9' ? 'vp09.00.10.08' : v.codec === 'h264' ? 'avc1.42e01f' : 'vp8', width: 640, height: 480 };
    }
    // a keyframe captured just before the first sound is placed at 0
    this.#origin ??= time;
    const timestamp = v.timeline.place(layerIndex, unwrapped, layer.clock.clockRate, time - this.#origin) / 1000;
    const muxFrame: MuxFrame = { data: frame.data, keyframe: frame.keyframe && isKeyframe(v.codec, frame.data), timestamp, duration: LAST_FRAME_S };
    const held = v.held;
    v.held = { frame: muxFrame, ...(config ? { config } : {}) };
    if (held) {
      held.frame.duration = Math.max(0.001, timestamp - held.frame.timestamp);
      this.#write((file) => file.addVideo(held.frame, held.config));
    }
  }

  #audioBatch(batch: PacketBatch): void {
    const a = this.#audio!;
    for (const r of batch.senderReports) a.clock.report(r.rtpTimestamp, r.ntpTime);
    for (const p of batch.packets) {
      this.#sync.observe(a.clock, a.clock.unwrap(p.timestamp), p.arrival);
      for (const frame of a.jitter.push(p)) this.#audioFrame(frame);
    }
  }

  #audioFrame(frame: Frame): void {
    const a = this.#audio!;
    const unwrapped = a.clock.unwrap(frame.timestamp);
    const time = this.#sync.time(a.clock, unwrapped);
    if (time === undefined) return;
    this.#origin ??= time;
    this.#writeAudio(frame, time, unwrapped);
  }

  #writeAudio(frame: Frame, time: number, unwrapped: number): void {
    const a = this.#audio!;
    if (time < this.#origin!) return;
    const timestamp = a.timeline.place(0, unwrapped, a.clock.clockRate, time - this.#origin!) / 1000;
    const muxFrame: MuxFrame = { data: frame.data, keyframe: true, timestamp, duration: opusPacketMs(frame.data) / 1000 };
    this.#write((file) => file.addAudio(muxFrame));
  }

  #write(op: (file: RecordingFile) => Promise<void>): void {
    const file = this.#file;
    if (!file || this.#failed) return;
    this.#writing = this.#writing.then(() => (this.#failed ? undefined : op(file))).catch((e: unknown) => this.#fail(e));
  }

  #fail(e: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#stopped = true;
    for (const tap of this.#taps) tap.detach();
    const file = this.#file;
    void file?.abort();
    this.#env.onError(e instanceof Error ? e : new Error(String(e)), file?.partPath);
  }

  /** Stops the recording: the taps are detached, what is buffered is written and the file is closed. Returns its path (undefined: nothing was written). */
  stop(): Promise<string | undefined> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<string | undefined> {
    this.#stopped = true;
    for (const tap of this.#taps) tap.detach();
    await this.#opening?.catch(() => {});
    if (this.#failed) return undefined;
    const v = this.#video;
    if (v && v.current >= 0) for (const f of v.layers[v.current]!.jitter.flush()) this.#videoFrame(v.current, f);
    if (this.#audio) for (const f of this.#audio.jitter.flush()) this.#audioFrame(f);
    const held = v?.held;
    if (held) {
      v.held = undefined;
      this.#write((file) => file.addVideo(held.frame, held.config));
    }
    await this.#writing;
    if (this.#failed || !this.#file) return undefined;
    try {
      return await this.#file.close();
    } catch (e) {
      this.#fail(e);
      return undefined;
    }
  }
}
