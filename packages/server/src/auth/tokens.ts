// Stateful tokens (invite links): random strings remembered by the server,
// each opening one group (or a group hierarchy) until it expires. They live
// in Galène's file `data/var/tokens.jsonl`, one JSON object per line, so a
// data directory can move between Galène and Atrium.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { permission, type Permission } from '@atrium/protocol/galene';
import type { Logger } from '../log.ts';
import { AuthError } from './errors.ts';

/** One token as stored on disk; times are RFC 3339 strings. */
export interface StatefulToken {
  token: string;
  /** The group it opens; with `includeSubgroups`, '' means every group (a global token). */
  group: string;
  /** The username it imposes; absent means the client must supply one (`need-username`). */
  username?: string;
  permissions: string[];
  /** Required to be usable: a token without an expiry time is treated as expired, as in Galène. */
  expires?: string;
  'not-before'?: string;
  issuedBy?: string;
  issuedAt?: string;
  /** Also opens every subgroup of `group`: Galène's field name (galenectl's `-include-subgroups`). */
  includeSubgroups?: boolean;
}

/** The file name Galène uses, relative to the data directory. */
export const TOKENS_FILE = 'var/tokens.jsonl';

/** Galène drops tokens a week after they expired. */
export const EXPIRED_TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const time = z
  .string()
  .regex(RFC3339, 'must be an RFC 3339 time such as 2030-01-31T12:00:00Z')
  .refine((s) => !Number.isNaN(Date.parse(s)), 'is not a valid date');
/** Go writes absent pointers as null; treat null like absent. */
const nullable = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);

const storedToken = z.looseObject({
  token: z.string().min(1, 'must not be empty'),
  group: z.string(),
  username: nullable(z.string()),
  permissions: nullable(z.array(z.string())).transform((v) => v ?? []),
  expires: nullable(time),
  'not-before': nullable(time),
  issuedBy: nullable(z.string()),
  issuedAt: nullable(time),
  includeSubgroups: nullable(z.boolean()),
  /** What Atrium wrote before it followed Galène's name; read, never written. */
  'include-subgroups': nullable(z.boolean()),
});

const KNOWN_FIELDS = new Set(['token', 'group', 'username', 'permissions', 'expires', 'not-before', 'issuedBy', 'issuedAt', 'includeSubgroups', 'include-subgroups']);

interface Stamp {
  size: number;
  mtimeMs: number;
}

function sameStamp(a: Stamp | undefined, b: Stamp | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** A token plus any fields a newer Galène wrote that we do not know, kept on rewrite. */
interface Entry {
  token: StatefulToken;
  extra: Record<string, unknown>;
}

/** The token file cannot be read or written; the message names the file and the fix. */
export class TokenFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenFileError';
  }
}

export interface CreateTokenOptions {
  group: string;
  username?: string;
  permissions: string[];
  expires: Date;
  notBefore?: Date;
  issuedBy?: string;
  includeSubgroups?: boolean;
}

export class TokenStore {
  readonly file: string;
  private readonly log: Logger;
  private entries = new Map<string, Entry>();
  /** Size and mtime of the file as last read or written; undefined when there was no file. */
  private stamp: Stamp | undefined;
  /** The version of the file last found unreadable by refresh(), to log it once. */
  private damaged: Stamp | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: { file: string; log: Logger }) {
    this.file = opts.file;
    this.log = opts.log;
  }

  /** Reads the file (a missing file is an empty store). Throws TokenFileError naming the bad line. */
  load(): Promise<void> {
    return this.exclusive(() => this.read());
  }

  /**
   * Re-reads the file if someone else (Galène's tools, an editor) changed it
   * since we last saw it. A damaged file is logged and the tokens already in
   * memory stay in force.
   */
  refresh(): Promise<void> {
    return this.exclusive(async () => {
      try {
        await this.readIfChanged();
        this.damaged = undefined;
      } catch (e) {
        // Keep the old stamp so that the next call retries, and writes refuse
        // to overwrite the damaged file; log once per version of the file.
        const seen = await this.currentStamp().catch(() => undefined);
        if (!sameStamp(seen, this.damaged)) {
          this.damaged = seen;
          this.log.error({ err: e, file: this.file }, 'token file changed but cannot be read; keeping the tokens already loaded');
        }
      }
    });
  }

  get(token: string): StatefulToken | undefined {
    const entry = this.entries.get(token);
    return entry === undefined ? undefined : copy(entry.token);
  }

  /** Tokens of one group (all when `group` is undefined), soonest expiry first, tokens without expiry first, as Galène lists them. */
  list(group?: string): StatefulToken[] {
    const out: StatefulToken[] = [];
    for (const { token } of this.entries.values()) {
      if (group === undefined || token.group === group) out.push(copy(token));
    }
    return out.sort(byExpiry);
  }

  /** Adds or replaces a token; the file is rewritten atomically before this resolves. */
  async put(t: StatefulToken): Promise<void> {
    const checked = validate(t, 'put');
    return this.exclusive(async () => {
      await this.readIfChanged();
      const previous = this.entries.get(checked.token);
      this.entries.set(checked.token, { token: checked, extra: previous?.extra ?? {} });
      try {
        await this.write();
      } catch (e) {
        if (previous === undefined) this.entries.delete(checked.token);
        else this.entries.set(checked.token, previous);
        throw e;
      }
    });
  }

  /** Removes a token; false if there was no such token. */
  delete(token: string): Promise<boolean> {
    return this.exclusive(async () => {
      await this.readIfChanged();
      const previous = this.entries.get(token);
      if (previous === undefined) return false;
      this.entries.delete(token);
      try {
        await this.write();
      } catch (e) {
        this.entries.set(token, previous);
        throw e;
      }
      return true;
    });
  }

  /** Issues a new unguessable token (144 random bits, base64url) and stores it. */
  async create(opts: CreateTokenOptions): Promise<StatefulToken> {
    const t: StatefulToken = {
      token: randomBytes(18).toString('base64url'),
      group: opts.group,
      permissions: [...opts.permissions],
      expires: opts.expires.toISOString(),
      issuedAt: new Date().toISOString(),
    };
    if (opts.username !== undefined) t.username = opts.username;
    if (opts.notBefore !== undefined) t['not-before'] = opts.notBefore.toISOString();
    if (opts.issuedBy !== undefined) t.issuedBy = opts.issuedBy;
    if (opts.includeSubgroups === true) t.includeSubgroups = true;
    await this.put(t);
    return copy(t);
  }

  /** Drops tokens that expired more than `retentionMs` ago (Galène: one week); returns how many. */
  purgeExpired(now: Date = new Date(), retentionMs: number = EXPIRED_TOKEN_RETENTION_MS): Promise<number> {
    return this.exclusive(async () => {
      await this.readIfChanged();
      const cutoff = now.getTime() - retentionMs;
      const removed: Entry[] = [];
      for (const entry of this.entries.values()) {
        const expires = entry.token.expires === undefined ? NaN : Date.parse(entry.token.expires);
        if (expires < cutoff) removed.push(entry);
      }
      if (removed.length === 0) return 0;
      for (const { token } of removed) this.entries.delete(token.token);
      try {
        await this.write();
      } catch (e) {
        for (const entry of removed) this.entries.set(entry.token.token, entry);
        throw e;
      }
      return removed.length;
    });
  }

  /** Runs one operation at a time, so rewrites never interleave. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async currentStamp(): Promise<Stamp | undefined> {
    try {
      const s = await stat(this.file);
      return { size: s.size, mtimeMs: s.mtimeMs };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async readIfChanged(): Promise<void> {
    const now = await this.currentStamp();
    if (!sameStamp(now, this.stamp)) await this.read();
  }

  private async read(): Promise<void> {
    let text: string;
    let stamp: Stamp;
    try {
      // Stamp and contents from the same open file, so a concurrent rewrite is seen next time.
      const handle = await open(this.file, 'r');
      try {
        const s = await handle.stat();
        stamp = { size: s.size, mtimeMs: s.mtimeMs };
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (e) {
      if (isNotFound(e)) {
        this.entries = new Map();
        this.stamp = undefined;
        return;
      }
      throw new TokenFileError(`cannot read the token file ${this.file}: ${errorText(e)}; check its permissions`, { cause: e });
    }
    const entries = new Map<string, Entry>();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      const where = `${this.file}:${i + 1}`;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        throw new TokenFileError(`${where}: not valid JSON (${errorText(e)}); each line must hold one token object — fix or remove that line`, { cause: e });
      }
      const parsed = storedToken.safeParse(raw);
      if (!parsed.success) {
        throw new TokenFileError(`${where}: ${describeIssues(parsed.error)}; fix or remove that line`);
      }
      const { extra, token } = split(parsed.data);
      const unknownPermissions = token.permissions.filter((p) => !permission.safeParse(p).success);
      if (unknownPermissions.length > 0) {
        this.log.warn({ file: where, permissions: unknownPermissions }, 'token grants permissions Atrium does not know; they are ignored');
      }
      entries.set(token.token, { token, extra });
    }
    this.entries = entries;
    this.stamp = stamp;
    this.log.debug({ file: this.file, count: entries.size }, 'stateful tokens loaded');
  }

  /** Writes every token to a temporary file beside the real one, then renames it over (atomic on POSIX). */
  private async write(): Promise<void> {
    const dir = dirname(this.file);
    try {
      if (this.entries.size === 0) {
        // Like Galène: no tokens, no file.
        await unlink(this.file).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
        this.stamp = undefined;
        return;
      }
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const lines = [...this.entries.values()]
        .sort((a, b) => byExpiry(a.token, b.token))
        .map((entry) => JSON.stringify(serialise(entry)) + '\n')
        .join('');
      const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      const handle = await open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(lines, 'utf8');
        await handle.sync();
      } catch (e) {
        await handle.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
      await handle.close();
      try {
        await rename(tmp, this.file);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
      this.stamp = await this.currentStamp();
    } catch (e) {
      throw new TokenFileError(`cannot write the token file ${this.file}: ${errorText(e)}; check that ${dir} is writable`, { cause: e });
    }
  }
}

/**
 * Whether a stateful token opens `group` now, Galène's rules: the group must
 * match (or be below it with `includeSubgroups`), the token must have an
 * expiry time that has not passed, and its `not-before` time (if any) must
 * have come. `username` is undefined when the token names nobody: the caller
 * then needs a username from the client (`need-username`). Permission names
 * Atrium does not know are dropped.
 */
export function checkStatefulToken(t: StatefulToken | undefined, group: string, now: Date = new Date()): { username: string | undefined; permissions: Permission[] } {
  if (t === undefined) {
    throw new AuthError('not-authorised', 'unknown token: it was never issued by this server, or it has been revoked');
  }
  if (!tokenCoversGroup(t, group)) {
    const scope = t.includeSubgroups === true ? (t.group === '' ? 'every group' : `group "${t.group}" and its subgroups`) : `group "${t.group}"`;
    throw new AuthError('not-authorised', `this token is for ${scope}, not for group "${group}"`);
  }
  const expires = t.expires === undefined ? NaN : Date.parse(t.expires);
  if (Number.isNaN(expires)) {
    throw new AuthError('token-expired', 'this token has no valid expiry time, so it is treated as expired; issue a new one');
  }
  if (now.getTime() > expires) {
    throw new AuthError('token-expired', `this token expired at ${new Date(expires).toISOString()}; ask for a new invitation`);
  }
  if (t['not-before'] !== undefined) {
    const notBefore = Date.parse(t['not-before']);
    if (Number.isNaN(notBefore) || now.getTime() < notBefore) {
      const when = Number.isNaN(notBefore) ? `"${t['not-before']}"` : new Date(notBefore).toISOString();
      throw new AuthError('not-authorised', `this token is not valid before ${when}`);
    }
  }
  const permissions: Permission[] = [];
  for (const name of t.permissions) {
    const parsed = permission.safeParse(name);
    if (parsed.success && !permissions.includes(parsed.data)) permissions.push(parsed.data);
  }
  return { username: t.username, permissions };
}

function tokenCoversGroup(t: StatefulToken, group: string): boolean {
  if (t.includeSubgroups === true) {
    return t.group === '' || group === t.group || group.startsWith(t.group + '/');
  }
  return t.group !== '' && t.group === group;
}

function validate(t: StatefulToken, what: string): StatefulToken {
  const parsed = storedToken.safeParse(t);
  if (!parsed.success) {
    throw new TypeError(`TokenStore.${what}: ${describeIssues(parsed.error)}`);
  }
  return split(parsed.data).token;
}

function split(data: z.infer<typeof storedToken>): Entry {
  const token: StatefulToken = { token: data.token, group: data.group, permissions: [...data.permissions] };
  if (data.username !== undefined) token.username = data.username;
  if (data.expires !== undefined) token.expires = data.expires;
  if (data['not-before'] !== undefined) token['not-before'] = data['not-before'];
  if (data.issuedBy !== undefined) token.issuedBy = data.issuedBy;
  if (data.issuedAt !== undefined) token.issuedAt = data.issuedAt;
  const sub = data.includeSubgroups ?? data['include-subgroups'];
  if (sub !== undefined) token.includeSubgroups = sub;
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!KNOWN_FIELDS.has(k)) extra[k] = v;
  }
  return { token, extra };
}

/** Field order as Galène writes it, then fields we keep without knowing them. */
function serialise({ token, extra }: Entry): Record<string, unknown> {
  return {
    token: token.token,
    group: token.group,
    ...(token.includeSubgroups === true ? { includeSubgroups: true } : {}),
    ...(token.username !== undefined ? { username: token.username } : {}),
    permissions: token.permissions,
    expires: token.expires ?? null,
    ...(token['not-before'] !== undefined ? { 'not-before': token['not-before'] } : {}),
    ...(token.issuedAt !== undefined ? { issuedAt: token.issuedAt } : {}),
    ...(token.issuedBy !== undefined ? { issuedBy: token.issuedBy } : {}),
    ...extra,
  };
}

function byExpiry(a: StatefulToken, b: StatefulToken): number {
  if (a.expires === undefined) return b.expires === undefined ? 0 : -1;
  if (b.expires === undefined) return 1;
  return Date.parse(a.expires) - Date.parse(b.expires);
}

function copy(t: StatefulToken): StatefulToken {
  return { ...t, permissions: [...t.permissions] };
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `field "${issue.path.map(String).join('.') || '(whole line)'}" ${issue.message}`).join('; ');
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
