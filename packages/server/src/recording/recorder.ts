// Recording a group to disk, as Galène's disk writer does: the recorder is
// a member of the group (user "RECORDING", no permissions, in everyone's
// user list) that takes the group's media at track level and writes one
// file per published stream under <recordings>/<group>/. `record` adds it,
// `unrecord` removes it; it leaves by itself when everyone else has left.
// A disk error (full, read-only, not permitted) stops the whole recording
// and tells the group's operators why; the server carries on.
import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Client, CoreEvent, PublishedStream, TrackConsumer } from '../core/client.ts';
import { CoreError } from '../core/errors.ts';
import type { Group, Member, RecordingService } from '../core/group.ts';
import type { Logger } from '../log.ts';
import { StreamRecording } from './stream-recording.ts';

export const RECORDER_USERNAME = 'RECORDING';

/** What the recorder reports to /metrics. */
export interface RecordingMetrics {
  /** Streams being written now. */
  active(delta: number): void;
  bytes(n: number): void;
  error(kind: RecordingErrorKind): void;
  /** A file was finished. */
  file(): void;
}

export type RecordingErrorKind = 'disk-full' | 'permission' | 'io' | 'other';

/**
 * mkdir -p. Node's recursive mkdir reports a directory it may not create
 * (read-only file system, say) as ENOENT when the directory does not exist
 * yet; then the first missing level is made on its own, whose error says why.
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const exists = (path: string) =>
      stat(path).then(
        () => true,
        () => false,
      );
    let missing = dir;
    while (dirname(missing) !== missing && !(await exists(dirname(missing)))) missing = dirname(missing);
    await mkdir(missing, { mode: 0o700 }); // throws the real reason (EROFS, EACCES…)
    await mkdir(dir, { recursive: true, mode: 0o700 }); // it could be made after all: the rest of the way
  }
}

/** The kind of a write error, and what to tell an operator about it. */
export function describeDiskError(e: Error, path: string | undefined): { kind: RecordingErrorKind; text: string } {
  const code = (e as NodeJS.ErrnoException).code;
  const where = path ? ` (${path})` : '';
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return { kind: 'disk-full', text: `the disk holding the recordings is full${where}; free some space (or delete old recordings) and record again` };
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return {
        kind: 'permission',
        text: `the server may not write the recordings${where}: ${code === 'EROFS' ? 'the file system is read-only' : 'permission denied'}; check the recordings directory`,
      };
    case 'EIO':
      return { kind: 'io', text: `the disk failed while writing${where}: ${e.message}` };
    default:
      return { kind: 'other', text: `${e.message}${where}` };
  }
}

/** Galène's file names: local time to the millisecond, then the username (no path separators). */
export function recordingBaseName(now: Date, username: string | undefined, label: string): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const time = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}T${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}.${p(now.getMilliseconds(), 3)}`;
  const clean = (s: string) =>
    s
      .replace(/\//g, '-slash-')
      .replace(/\\/g, '-backslash-')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
      .replace(/[\u0000-\u001f\u007f]/g, '');
  let name = time;
  if (username) name += `-${clean(username)}`;
  if (label && label !== 'camera') name += `-${clean(label)}`;
  return name;
}

export class Recorder implements Client, TrackConsumer {
  readonly id = `recorder-${randomBytes(8).toString('hex')}`;
  readonly kind = 'recorder';
  readonly tracks: TrackConsumer = this;
  readonly dir: string;
  #member: Member | undefined;
  #streams = new Map<string, StreamRecording>();
  #ready: Promise<void> | undefined;
  #stopped = false;

  constructor(
    readonly group: Group,
    root: string,
    private readonly env: { metrics: RecordingMetrics; log: Logger; onStopped: (r: Recorder) => void },
  ) {
    this.dir = join(root, ...group.name.split('/'));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Streams being written now: stream key → file name (once open). */
  files(): string[] {
    return [...this.#streams.values()].flatMap((s) => (s.file ? [s.file] : []));
  }

  /** Joins the group; the directory is made in the background (a failure ends the recording with a message to the operators). */
  begin(): void {
    this.#ready = makeDirectory(this.dir).then(
      () => undefined,
      (e: Error) => this.#failed(e, this.dir),
    );
    this.#member = this.group.admitSystem(this, RECORDER_USERNAME);
  }

  deliver(event: CoreEvent): void {
    // Alone in the group: nobody is left to record.
    if (event.type === 'user' && event.kind === 'delete' && this.group.size <= 1 && this.#member) {
      queueMicrotask(() => void this.stop('everybody left the group'));
    }
  }

  terminate(reason: string): void {
    void this.stop(reason, { removed: true });
  }

  published(p: PublishedStream): void {
    if (this.#stopped || this.#streams.has(p.key)) return;
    const rec = new StreamRecording(p, {
      dir: this.dir,
      baseName: recordingBaseName(new Date(), p.owner.username, p.label),
      onBytes: (n) => this.env.metrics.bytes(n),
      onError: (e, file) => void this.#failed(e, file),
      warn: (text) => this.group.tellOperators('warning', `Recording: ${text}`),
    });
    this.#streams.set(p.key, rec);
    this.env.metrics.active(1);
    void (async () => {
      await this.#ready;
      if (this.#stopped || this.#streams.get(p.key) !== rec) return;
      await rec.start();
      this.env.log.info({ group: this.group.name, stream: p.id, file: rec.file }, 'recording a stream');
    })().catch((e: Error) => this.#failed(e, undefined));
  }

  unpublished(p: PublishedStream): void {
    const rec = this.#streams.get(p.key);
    if (!rec) return;
    this.#streams.delete(p.key);
    this.env.metrics.active(-1);
    void this.#finish(rec);
  }

  async #finish(rec: StreamRecording): Promise<void> {
    const path = await rec.stop();
    if (path) {
      this.env.metrics.file();
      this.env.log.info({ group: this.group.name, file: path }, 'recording written');
    }
  }

  async #failed(e: Error, path: string | undefined): Promise<void> {
    if (this.#stopped) return;
    const { kind, text } = describeDiskError(e, path);
    this.env.metrics.error(kind);
    this.env.log.error({ err: e, group: this.group.name, file: path }, `recording stopped: ${text}`);
    this.group.tellOperators('error', `Recording stopped: ${text}`);
    await this.stop('a write failed');
  }

  /** Ends the recording: every file is finished, the recorder leaves the group. */
  async stop(why: string, opts: { removed?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.env.metrics.active(-streams.length);
    if (this.#member && !opts.removed) this.group.remove(this.#member, { notify: false });
    this.env.onStopped(this);
    this.env.log.info({ group: this.group.name, why }, 'recording ended');
    await Promise.all(streams.map((s) => this.#finish(s)));
  }
}

/** `record` and `unrecord` for every group: at most one recorder per group. */
export class DiskRecording implements RecordingService {
  readonly #recorders = new Map<Group, Recorder>();

  constructor(private readonly env: { dir: string; metrics: RecordingMetrics; log: Logger }) {}

  get dir(): string {
    return this.env.dir;
  }

  /** The groups being recorded and the files being written. */
  active(): { group: string; files: string[] }[] {
    return [...this.#recorders.values()].map((r) => ({ group: r.group.name, files: r.files() }));
  }

  isRecording(group: Group): boolean {
    return this.#recorders.has(group);
  }

  start(group: Group, by: Member): void {
    if (this.#recorders.has(group)) throw new CoreError('not-permitted', `group "${group.name}" is already being recorded`);
    const recorder = new Recorder(group, this.env.dir, {
      metrics: this.env.metrics,
      log: this.env.log,
      onStopped: (r) => {
        if (this.#recorders.get(group) === r) this.#recorders.delete(group);
      },
    });
    this.#recorders.set(group, recorder);
    recorder.begin();
    this.env.log.info({ group: group.name, by: by.username ?? by.id }, 'recording started');
  }

  stop(group: Group, by: Member): void {
    void this.#recorders.get(group)?.stop(`stopped by ${by.username ?? by.id}`);
  }

  /** Finishes every recording (the server is stopping). */
  async close(): Promise<void> {
    await Promise.all([...this.#recorders.values()].map((r) => r.stop('the server is shutting down')));
  }
}
