// The groups directory: loads every group file, follows edits on disk
// (debounced; a broken edit keeps the last good version), and gives the admin
// API raw, ETag-guarded, atomic read/write/delete access to the files.
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isWellFormed } from '@atrium/protocol/text';
import { LIMITS } from '../core/vocabulary.ts';
import type { Logger } from '../log.ts';
import { GroupFileError, parseGroupDescription, type GroupDescription } from './description.ts';

/** How long the watcher waits for a file to settle before re-reading it. */
const DEBOUNCE_MS = 100;

export type GroupStoreErrorCode = 'invalid-group-name' | 'group-not-found' | 'precondition-failed';

/** Errors of the raw API, with a stable code for programs. */
export class GroupStoreError extends Error {
  constructor(
    readonly code: GroupStoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GroupStoreError';
  }
}
export class InvalidGroupNameError extends GroupStoreError {
  constructor(name: string, why: string) {
    super('invalid-group-name', `invalid group name ${JSON.stringify(name)}: ${why}`);
  }
}
export class GroupNotFoundError extends GroupStoreError {
  constructor(readonly group: string) {
    super('group-not-found', `group "${group}" does not exist`);
  }
}
/** An If-Match / If-None-Match condition did not hold (HTTP 412). */
export class PreconditionFailedError extends GroupStoreError {
  constructor(message: string) {
    super('precondition-failed', message);
  }
}

/** Refuses names that could escape the groups directory or hide a file. */
export function validateGroupName(name: string): void {
  if (name === '') throw new InvalidGroupNameError(name, 'it is empty');
  if (name.length > LIMITS.groupNameChars) {
    throw new InvalidGroupNameError(name, `it is longer than ${LIMITS.groupNameChars} characters`);
  }
  if (name.startsWith('/') || name.endsWith('/')) {
    throw new InvalidGroupNameError(name, 'it must not start or end with "/"');
  }
  if (!isWellFormed(name)) throw new InvalidGroupNameError(name, 'it is not well-formed Unicode (it holds a lone UTF-16 surrogate)');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this check refuses
  if (/[\\\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidGroupNameError(name, 'it must not contain backslashes or control characters');
  }
  for (const segment of name.split('/')) {
    if (segment === '') throw new InvalidGroupNameError(name, 'it must not contain empty segments ("//")');
    if (segment.startsWith('.')) {
      throw new InvalidGroupNameError(name, 'no part of it may start with "." (this also refuses "." and "..")');
    }
  }
}

export interface Preconditions {
  /** The If-Match header, as received. */
  ifMatch?: string | undefined;
  /** The If-None-Match header, as received. */
  ifNoneMatch?: string | undefined;
}

/**
 * Whether `etag` is listed in an If-Match / If-None-Match header. `*`
 * matches any existing representation. If-Match compares strongly (weak
 * tags never match), If-None-Match weakly (RFC 9110, 13.1).
 */
export function etagMatches(etag: string | undefined, header: string, weak: boolean): boolean {
  if (etag === undefined) return false;
  if (header.trim() === '*') return true;
  const tags = header.match(/(W\/)?"[^"]*"/g) ?? [];
  const opaque = etag.replace(/^W\//, '');
  for (const tag of tags) {
    const isWeak = tag.startsWith('W/');
    if (!weak && (isWeak || etag.startsWith('W/'))) continue;
    if (tag.replace(/^W\//, '') === opaque) return true;
  }
  return false;
}

/** Throws PreconditionFailedError unless the conditions hold for `etag` (undefined: no such resource). */
export function checkPreconditions(etag: string | undefined, pre: Preconditions | undefined, what: string): void {
  if (pre?.ifMatch !== undefined && !etagMatches(etag, pre.ifMatch, false)) {
    throw new PreconditionFailedError(
      etag === undefined ? `${what} does not exist, so If-Match cannot match` : `${what} has changed since you read it (its ETag is no longer ${pre.ifMatch.trim()}); read it again and retry`,
    );
  }
  if (pre?.ifNoneMatch !== undefined && etagMatches(etag, pre.ifNoneMatch, true)) {
    throw new PreconditionFailedError(pre.ifNoneMatch.trim() === '*' ? `${what} already exists and If-None-Match: * forbids overwriting it` : `${what} matches the ETag given in If-None-Match`);
  }
}

/** A strong ETag computed from the file's bytes. */
export function etagOf(bytes: Uint8Array | string): string {
  return `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
}

export interface RawGroup {
  name: string;
  /** The JSON object as on disk. */
  json: Record<string, unknown>;
  etag: string;
}

export interface WriteResult {
  etag: string;
  created: boolean;
  desc: GroupDescription;
}

/** The file written when the groups directory holds no group at all. */
export const DEFAULT_PUBLIC_GROUP = {
  public: true,
  displayName: 'Public',
  'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
} as const;

interface Entry {
  desc: GroupDescription;
  etag: string;
}

interface GroupStoreEvents {
  change: [name: string, desc: GroupDescription | undefined];
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class GroupStore extends EventEmitter<GroupStoreEvents> {
  readonly dir: string;
  private readonly log: Logger;
  private readonly groups = new Map<string, Entry>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(opts: { dir: string; log: Logger }) {
    super();
    this.dir = path.resolve(opts.dir);
    this.log = opts.log;
  }

  /** Loads every group file, then follows changes on disk. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.locked(() => this.scanDir(''));
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  get(name: string): GroupDescription | undefined {
    return this.groups.get(name)?.desc;
  }

  /** The ETag of the file version in use (what etagOf gives for its bytes), or undefined when the group is not loaded. */
  loadedEtag(name: string): string | undefined {
    return this.groups.get(name)?.etag;
  }

  list(): GroupDescription[] {
    return [...this.groups.keys()].sort().map((n) => this.groups.get(n)!.desc);
  }

  /**
   * The description for a group name, including automatic subgroups: when
   * `a/b` has no file but `a` has `auto-subgroups`, `a`'s description is
   * used for `a/b`, not public and without a description (as Galène does).
   */
  resolve(name: string): GroupDescription | undefined {
    const exact = this.get(name);
    if (exact !== undefined) return exact;
    let parent = name;
    while (parent.includes('/')) {
      parent = parent.slice(0, parent.lastIndexOf('/'));
      const p = this.get(parent);
      if (p === undefined) continue;
      if (!p.autoSubgroups) return undefined;
      const sub: GroupDescription = { ...p, name, public: false };
      delete sub.description;
      return sub;
    }
    return undefined;
  }

  /** Where a group's file lives, for messages: relative to the working directory when inside it. */
  displayFile(name: string): string {
    const abs = this.fileOf(name);
    const rel = path.relative(process.cwd(), abs);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
  }

  // -------------------------------------------------------------------------
  // Raw access for the admin API

  /** The file as JSON with its ETag, or undefined when there is no such group file. */
  async readRaw(name: string): Promise<RawGroup | undefined> {
    validateGroupName(name);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.fileOf(name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return { name, json: this.parseJson(name, bytes), etag: etagOf(bytes) };
  }

  /** Replaces a group file (creating it if needed), after validating it. */
  async writeRaw(name: string, json: Record<string, unknown>, pre?: Preconditions): Promise<WriteResult> {
    return this.modifyRaw(name, () => json, pre);
  }

  /**
   * Read-modify-write under the store's lock: `fn` gets the current file
   * (undefined if none) and returns the new JSON. Preconditions are checked
   * against the current ETag; the result is validated, written atomically,
   * and takes effect at once.
   */
  async modifyRaw(name: string, fn: (current: RawGroup | undefined) => Record<string, unknown> | Promise<Record<string, unknown>>, pre?: Preconditions): Promise<WriteResult> {
    validateGroupName(name);
    return this.locked(async () => {
      const current = await this.readRaw(name);
      checkPreconditions(current?.etag, pre, `group "${name}"`);
      const json = await fn(current);
      const desc = parseGroupDescription(name, this.displayFile(name), json);
      const bytes = Buffer.from(JSON.stringify(json, null, 4) + '\n', 'utf8');
      await this.writeAtomic(this.fileOf(name), bytes);
      const etag = etagOf(bytes);
      this.set(name, { desc, etag });
      this.log.info({ group: name }, current === undefined ? 'group file created' : 'group file updated');
      return { etag, created: current === undefined, desc };
    });
  }

  /** Deletes a group file. Throws GroupNotFoundError when there is none. */
  async deleteRaw(name: string, pre?: Preconditions): Promise<void> {
    validateGroupName(name);
    await this.locked(async () => {
      const current = await this.readRaw(name);
      if (current === undefined) throw new GroupNotFoundError(name);
      checkPreconditions(current.etag, pre, `group "${name}"`);
      await unlink(this.fileOf(name));
      this.remove(name);
      this.log.info({ group: name }, 'group file deleted');
    });
  }

  /**
   * Writes `public.json` (anyone may join with any password and present)
   * when the groups directory holds no group file at all, so that a fresh
   * install is usable at once. Returns whether it wrote the file.
   */
  async ensureDefaultGroup(): Promise<boolean> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return this.locked(async () => {
      if (await this.hasAnyGroupFile('')) return false;
      const json: Record<string, unknown> = structuredClone(DEFAULT_PUBLIC_GROUP) as Record<string, unknown>;
      const desc = parseGroupDescription('public', this.displayFile('public'), json);
      const bytes = Buffer.from(JSON.stringify(json, null, 4) + '\n', 'utf8');
      await this.writeAtomic(this.fileOf('public'), bytes);
      this.set('public', { desc, etag: etagOf(bytes) });
      this.log.info({ file: this.displayFile('public') }, 'no group defined: created the default group "public" (anyone may join)');
      return true;
    });
  }

  // -------------------------------------------------------------------------
  // Internals

  private fileOf(name: string): string {
    return path.join(this.dir, ...name.split('/')) + '.json';
  }

  private parseJson(name: string, bytes: Buffer): Record<string, unknown> {
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new GroupFileError(this.displayFile(name), undefined, `not valid JSON (${(err as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new GroupFileError(this.displayFile(name), undefined, 'expected a JSON object ({...}) at the top level');
    }
    return json as Record<string, unknown>;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private set(name: string, entry: Entry): void {
    const old = this.groups.get(name);
    if (old?.etag === entry.etag) return;
    this.groups.set(name, entry);
    for (const w of entry.desc.warnings) this.log.warn({ file: entry.desc.file }, w);
    this.emit('change', name, entry.desc);
  }

  private remove(name: string): void {
    if (this.groups.delete(name)) this.emit('change', name, undefined);
  }

  private async writeAtomic(file: string, bytes: Buffer): Promise<void> {
    const dir = path.dirname(file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    // Written beside the file and renamed over it: a failure (a full disk) leaves the old file as it was.
    try {
      const fh = await open(temp, 'wx', 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      this.log.error({ file, err: (err as Error).message }, 'cannot write a group file; the previous version is unchanged');
      throw err;
    }
  }

  private async hasAnyGroupFile(rel: string): Promise<boolean> {
    let entries;
    try {
      entries = await readdir(path.join(this.dir, rel), { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (e.isFile() && e.name.endsWith('.json')) return true;
      if (e.isDirectory() && (await this.hasAnyGroupFile(path.join(rel, e.name)))) return true;
    }
    return false;
  }

  /** Group name of a path relative to the groups directory, or undefined if it is not a group file. */
  private nameOfFile(rel: string): string | undefined {
    if (!rel.endsWith('.json')) return undefined;
    const name = rel.slice(0, -'.json'.length).split(path.sep).join('/');
    try {
      validateGroupName(name);
    } catch (err) {
      this.log.warn({ file: path.join(this.dir, rel) }, `ignored: ${(err as Error).message}`);
      return undefined;
    }
    return name;
  }

  /** Loads (or re-loads) every group file below `rel`, watches its folders, forgets vanished files. */
  private async scanDir(rel: string): Promise<void> {
    if (this.closed) return;
    const seen = new Set<string>();
    await this.scanInto(rel, seen);
    const prefix = rel === '' ? '' : rel.split(path.sep).join('/') + '/';
    for (const name of [...this.groups.keys()]) {
      if (name.startsWith(prefix) && !seen.has(name)) this.remove(name);
    }
  }

  private async scanInto(rel: string, seen: Set<string>): Promise<void> {
    let entries;
    try {
      entries = await readdir(path.join(this.dir, rel), { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    this.watchDir(rel);
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const childRel = path.join(rel, e.name);
      if (e.isDirectory()) {
        await this.scanInto(childRel, seen);
      } else if (e.isFile()) {
        const name = this.nameOfFile(childRel);
        if (name === undefined) continue;
        seen.add(name);
        await this.loadFile(name);
      }
    }
  }

  /** Reads one group file; a broken file keeps the last good version. */
  private async loadFile(name: string): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.fileOf(name));
    } catch (err) {
      if (isNotFound(err)) this.remove(name);
      else this.log.warn({ file: this.displayFile(name), err: (err as Error).message }, 'cannot read group file');
      return;
    }
    const etag = etagOf(bytes);
    if (this.groups.get(name)?.etag === etag) return;
    try {
      const desc = parseGroupDescription(name, this.displayFile(name), this.parseJson(name, bytes));
      this.set(name, { desc, etag });
    } catch (err) {
      const kept = this.groups.has(name);
      this.log.warn(
        { file: this.displayFile(name), reason: (err as Error).message },
        kept ? 'group file refused; keeping the last good version' : 'group file refused; the group is unavailable until it is fixed',
      );
    }
  }

  private watchDir(rel: string): void {
    if (this.closed || this.watchers.has(rel)) return;
    let w: FSWatcher;
    try {
      w = watch(path.join(this.dir, rel), { persistent: false }, (_event, filename) => {
        if (filename === null) this.schedule(rel, true);
        else this.schedule(path.join(rel, filename.toString()), false);
      });
    } catch (err) {
      this.log.warn({ dir: path.join(this.dir, rel), err: (err as Error).message }, 'cannot watch groups folder; edits there need a restart');
      return;
    }
    w.on('error', () => {
      w.close();
      if (this.watchers.get(rel) === w) this.watchers.delete(rel);
    });
    this.watchers.set(rel, w);
  }

  private schedule(rel: string, isDir: boolean): void {
    if (this.closed) return;
    if (path.basename(rel).startsWith('.')) return; // temporary files, hidden folders
    const key = (isDir ? 'dir:' : 'path:') + rel;
    const old = this.timers.get(key);
    if (old !== undefined) clearTimeout(old);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.locked(() => (isDir ? this.scanDir(rel) : this.handlePath(rel))).catch((err: unknown) => {
        this.log.warn({ path: path.join(this.dir, rel), err: (err as Error).message }, 'cannot re-read groups folder');
      });
    }, DEBOUNCE_MS);
    this.timers.set(key, timer);
  }

  /** Something changed at `rel`: a group file, a folder, or something that is gone. */
  private async handlePath(rel: string): Promise<void> {
    if (this.closed) return;
    let st;
    try {
      st = await stat(path.join(this.dir, rel));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const name = this.nameOfFile(rel);
      if (name !== undefined) this.remove(name);
      // A folder may have gone: forget its groups and watchers.
      const prefix = rel.split(path.sep).join('/') + '/';
      for (const n of [...this.groups.keys()]) if (n.startsWith(prefix)) this.remove(n);
      for (const [dir, w] of this.watchers) {
        if (dir === rel || dir.startsWith(rel + path.sep)) {
          w.close();
          this.watchers.delete(dir);
        }
      }
      return;
    }
    if (st.isDirectory()) {
      await this.scanDir(rel);
    } else if (st.isFile()) {
      const name = this.nameOfFile(rel);
      if (name !== undefined) await this.loadFile(name);
    }
  }
}
