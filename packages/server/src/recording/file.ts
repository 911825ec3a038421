// One recording on disk: a WebM (VP8, VP9, Opus) or MP4 (H.264) file
// muxed by mediabunny, written as NAME.part and renamed to NAME only once
// the muxer has finalized it, so a crash never leaves a file under its
// final name that a player refuses. Disk errors (full, read-only,
// permissions) surface as the rejection of add() or close().
//
// mediabunny (Vanilagy/mediabunny) is the maintained successor of the same
// author's webm-muxer and mp4-muxer: pure TypeScript, no native code, runs
// on Node 20, writes Matroska/WebM with cues and duration and MP4 from
// Annex B H.264 (it builds the avcC box itself).
import { type FileHandle, access, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, Mp4OutputFormat, Output, StreamTarget, WebMOutputFormat } from 'mediabunny';
import type { CodecName } from '../media/engine.ts';
import { opusHead } from './codecs.ts';

export const PART = '.part';

/** The container for a video codec (an audio-only stream is WebM). */
export function containerFor(video: CodecName | undefined): 'webm' | 'mp4' {
  return video === 'h264' ? 'mp4' : 'webm';
}

export interface FileTrackInfo {
  kind: 'audio' | 'video';
  codec: CodecName;
  /** Audio channels as negotiated. */
  channels?: number;
}

export interface VideoConfig {
  codecString: string;
  width: number;
  height: number;
}

/** A frame for the muxer: times in seconds from the start of the file. */
export interface MuxFrame {
  data: Uint8Array;
  keyframe: boolean;
  timestamp: number;
  duration: number;
}

export class RecordingFile {
  readonly #handle: FileHandle;
  readonly #output: Output;
  readonly #video: EncodedVideoPacketSource | undefined;
  readonly #audio: EncodedAudioPacketSource | undefined;
  readonly #audioChannels: number;
  #videoConfigured = false;
  #audioConfigured = false;
  #started: Promise<void>;
  #closed = false;
  /** Bytes written to disk so far. */
  bytes = 0;

  private constructor(
    readonly dir: string,
    /** The final name; the file is `name + .part` until close(). */
    readonly name: string,
    handle: FileHandle,
    tracks: readonly FileTrackInfo[],
    onWrite: (bytes: number) => void,
  ) {
    this.#handle = handle;
    const video = tracks.find((t) => t.kind === 'video');
    const audio = tracks.find((t) => t.kind === 'audio');
    const writable = new WritableStream<{ type: 'write'; data: Uint8Array; position: number }>({
      write: async (chunk) => {
        await handle.write(chunk.data, 0, chunk.data.byteLength, chunk.position);
        this.bytes += chunk.data.byteLength;
        onWrite(chunk.data.byteLength);
      },
    });
    const format = containerFor(video?.codec) === 'mp4' ? new Mp4OutputFormat({ fastStart: false }) : new WebMOutputFormat();
    this.#output = new Output({ format, target: new StreamTarget(writable) });
    if (video) {
      this.#video = new EncodedVideoPacketSource(video.codec === 'h264' ? 'avc' : video.codec === 'vp9' ? 'vp9' : 'vp8');
      this.#output.addVideoTrack(this.#video);
    }
    this.#audioChannels = audio?.channels ?? 2;
    if (audio) {
      this.#audio = new EncodedAudioPacketSource('opus');
      this.#output.addAudioTrack(this.#audio);
    }
    this.#started = this.#output.start();
  }

  /**
   * Creates `<dir>/<base>.<ext>.part` (with -01, -02… when the name is
   * taken, as Galène does), ready for frames.
   */
  static async create(dir: string, base: string, tracks: readonly FileTrackInfo[], onWrite: (bytes: number) => void = () => {}): Promise<RecordingFile> {
    const ext = containerFor(tracks.find((t) => t.kind === 'video')?.codec);
    for (let n = 0; n < 100; n++) {
      const name = `${base}${n === 0 ? '' : `-${String(n).padStart(2, '0')}`}.${ext}`;
      // both names must be free: the final one (a finished recording) and the .part (one in progress)
      if (await exists(join(dir, name))) continue;
      let handle: FileHandle;
      try {
        handle = await open(join(dir, name + PART), 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      return new RecordingFile(dir, name, handle, tracks, onWrite);
    }
    throw new Error(`cannot find a free file name for ${base}.${ext} in ${dir} (tried 100)`);
  }

  get path(): string {
    return join(this.dir, this.name);
  }

  get partPath(): string {
    return this.path + PART;
  }

  get hasVideo(): boolean {
    return this.#video !== undefined;
  }

  /** A video frame; the first must be a keyframe with its configuration. */
  async addVideo(frame: MuxFrame, config?: VideoConfig): Promise<void> {
    if (!this.#video || this.#closed) return;
    await this.#started;
    let meta: Parameters<EncodedVideoPacketSource['add']>[1];
    if (!this.#videoConfigured) {
      if (!config) throw new Error(`${this.name}: the first video frame needs its codec configuration`);
      meta = { decoderConfig: { codec: config.codecString, codedWidth: config.width, codedHeight: config.height } };
      this.#videoConfigured = true;
    }
    await this.#video.add(new EncodedPacket(frame.data, frame.keyframe ? 'key' : 'delta', frame.timestamp, frame.duration), meta);
  }

  async addAudio(frame: MuxFrame): Promise<void> {
    if (!this.#audio || this.#closed) return;
    await this.#started;
    let meta: Parameters<EncodedAudioPacketSource['add']>[1];
    if (!this.#audioConfigured) {
      meta = { decoderConfig: { codec: 'opus', numberOfChannels: this.#audioChannels, sampleRate: 48000, description: opusHead(this.#audioChannels) } };
      this.#audioConfigured = true;
    }
    await this.#audio.add(new EncodedPacket(frame.data, 'key', frame.timestamp, frame.duration), meta);
  }

  /** Whether anything was added (an empty file is removed at close instead of kept). */
  get empty(): boolean {
    return !this.#videoConfigured && !this.#audioConfigured;
  }

  /**
   * Finalizes the file and gives it its name. An empty one is deleted.
   * Returns the final path, or undefined when it was empty.
   */
  async close(): Promise<string | undefined> {
    if (this.#closed) return undefined;
    this.#closed = true;
    if (this.empty) {
      await this.#output.cancel().catch(() => {});
      await this.#handle.close().catch(() => {});
      await unlink(this.partPath).catch(() => {});
      return undefined;
    }
    try {
      await this.#started;
      await this.#output.finalize();
      await this.#handle.sync();
    } finally {
      await this.#handle.close().catch(() => {});
    }
    await rename(this.partPath, this.path);
    return this.path;
  }

  /** Gives up (after an error): the .part file stays for whoever wants what it holds. */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#output.cancel().catch(() => {});
    await this.#handle.close().catch(() => {});
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
