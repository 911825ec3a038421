// The STUN/TURN servers handed to clients in `joined.rtcConfiguration`. They
// come from Galène's file `data/ice-servers.json` and from the `--turn` CLI
// option. An entry with `"credentialType": "hmac-sha1"` holds the secret it
// shares with a coturn server (`use-auth-secret`): clients get short-lived
// credentials made from it, never the secret itself.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { IceServer, RtcConfiguration } from '@atrium/protocol/galene';
import type { Logger } from '../log.ts';
import { turnRestCredentials } from './turn-rest.ts';

/** The file name Galène uses, relative to the data directory. */
export const ICE_SERVERS_FILE = 'ice-servers.json';

/** Lifetime of TURN REST credentials; Galène uses 24 hours. */
export const DEFAULT_TURN_TTL_SECONDS = 86_400;

/**
 * One server as configured, in the shape of an ice-servers.json entry. With
 * `credentialType: 'hmac-sha1'`, `credential` is the secret shared with the
 * TURN server: rtcConfigurationFor turns it into TURN REST credentials and
 * never copies it out. Never send a ConfiguredIceServer to a client as is.
 */
export interface ConfiguredIceServer {
  urls: string[];
  username?: string;
  credential?: string;
  credentialType?: 'password' | 'hmac-sha1';
  /** hmac-sha1 only: lifetime of the generated credentials in seconds (default 86400, as Galène). */
  ttl?: number;
}

/** The `--turn` server option: TURN REST credentials from a shared secret. */
export interface TurnOption {
  urls: string[];
  secret: string;
  /** Seconds; default 86400. */
  ttl?: number;
}

/** The ICE configuration is unusable; the message names the file (or option) and the field. */
export class IceConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IceConfigError';
  }
}

const iceUrl = z.string().regex(/^(stuns?|turns?):\S+$/i, 'must be a stun:, stuns:, turn: or turns: URL, e.g. "turn:turn.example.org:3478"');
const urlList = z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(iceUrl).min(1, 'must list at least one URL'));

const fileEntry = z
  .strictObject({
    urls: urlList,
    username: z.string().optional(),
    credential: z.string().optional(),
    credentialType: z
      .enum(['password', 'hmac-sha1'], {
        error: 'must be "password" or "hmac-sha1" ("oauth" is not supported: browsers no longer implement it)',
      })
      .optional(),
  })
  .superRefine((entry, ctx) => {
    const isTurn = entry.urls.some((u) => /^turns?:/i.test(u));
    if (entry.credentialType === 'hmac-sha1') {
      if (entry.credential === undefined || entry.credential === '') {
        ctx.addIssue({ code: 'custom', path: ['credential'], message: 'must hold the secret shared with the TURN server (coturn static-auth-secret) when credentialType is "hmac-sha1"' });
      }
    } else if (isTurn && (entry.username === undefined || entry.credential === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [entry.username === undefined ? 'username' : 'credential'],
        message: 'is required for a turn: URL (browsers refuse TURN servers without username and credential); or use "credentialType": "hmac-sha1"',
      });
    }
  });

const fileSchema = z.array(fileEntry, { error: 'must be a JSON array of ICE server objects, e.g. [{"urls": ["stun:stun.example.org"]}]' });

const turnOptionSchema = z.strictObject({
  urls: urlList,
  secret: z.string().min(1, 'must not be empty'),
  ttl: z.number().int().positive('must be a positive number of seconds').optional(),
});

/** Validates the contents of an ice-servers.json file; `source` names it in errors. */
export function parseIceServers(json: unknown, source: string): ConfiguredIceServer[] {
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) throw new IceConfigError(`${source}: ${describeIssues(parsed.error, 'entry')}`);
  return parsed.data.map(
    (entry): ConfiguredIceServer => ({
      urls: entry.urls,
      ...(entry.username !== undefined ? { username: entry.username } : {}),
      ...(entry.credential !== undefined ? { credential: entry.credential } : {}),
      ...(entry.credentialType !== undefined ? { credentialType: entry.credentialType } : {}),
    }),
  );
}

/**
 * Reads `<dataDir>/ice-servers.json`. A missing file means no ICE servers at
 * all (no public STUN server is added behind the admin's back). A damaged
 * file throws IceConfigError.
 */
export async function loadIceServers(dataDir: string, log: Logger): Promise<ConfiguredIceServer[]> {
  const file = join(dataDir, ICE_SERVERS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT') {
      log.info({ file }, 'no ICE servers file: clients get no STUN or TURN server (direct connections only)');
      return [];
    }
    throw new IceConfigError(`${file}: cannot be read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new IceConfigError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  const servers = parseIceServers(json, file);
  log.info({ file, servers: servers.map(summary) }, 'ICE servers loaded');
  return servers;
}

/** The `--turn` option as configured servers; `source` names the option in errors. */
export function turnOptionServers(turn: TurnOption, source = '--turn'): ConfiguredIceServer[] {
  const parsed = turnOptionSchema.safeParse(turn);
  if (!parsed.success) throw new IceConfigError(`${source}: ${describeIssues(parsed.error, 'option')}`);
  return [{ urls: parsed.data.urls, credential: parsed.data.secret, credentialType: 'hmac-sha1', ttl: parsed.data.ttl ?? DEFAULT_TURN_TTL_SECONDS }];
}

/** Everything configured: the file's servers first (Galène prefers them), then `--turn`. */
export async function configuredIceServers(opts: { dataDir: string; log: Logger; turn?: TurnOption }): Promise<ConfiguredIceServer[]> {
  const fromFile = await loadIceServers(opts.dataDir, opts.log);
  return opts.turn === undefined ? fromFile : [...fromFile, ...turnOptionServers(opts.turn)];
}

/**
 * The configuration one client receives. A shared secret (hmac-sha1 entry)
 * becomes fresh TURN REST credentials whose user part is the entry's
 * `username` if it has one (Galène's behaviour), else `user`; other entries
 * are passed as written. `relayOnly` forces TURN (Galène's `-relay-only`).
 */
export function rtcConfigurationFor(servers: readonly ConfiguredIceServer[], user: string, now: Date = new Date(), opts: { relayOnly?: boolean } = {}): RtcConfiguration {
  const iceServers = servers.map((server): IceServer => {
    if (server.credentialType === 'hmac-sha1') {
      const { username, credential } = turnRestCredentials(server.credential ?? '', server.username || user, server.ttl ?? DEFAULT_TURN_TTL_SECONDS, now);
      return { urls: [...server.urls], username, credential };
    }
    return {
      urls: [...server.urls],
      ...(server.username !== undefined ? { username: server.username } : {}),
      ...(server.credential !== undefined ? { credential: server.credential } : {}),
    };
  });
  return opts.relayOnly === true ? { iceServers, iceTransportPolicy: 'relay' } : { iceServers };
}

/** What may be logged about a server: never a credential or secret. */
function summary(server: ConfiguredIceServer): { urls: string[]; credentialType: string } {
  return { urls: server.urls, credentialType: server.credentialType ?? 'password' };
}

function describeIssues(error: z.ZodError, what: string): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length === 0 ? `the ${what}` : `${what} [${String(issue.path[0])}]`;
        return `${where} has the unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')} (known: ${what === 'option' ? 'urls, secret, ttl' : 'urls, username, credential, credentialType'})`;
      }
      const [first, ...rest] = issue.path;
      let where: string;
      if (issue.path.length === 0) where = what === 'entry' ? 'the file' : 'the option';
      else if (what === 'entry' && typeof first === 'number') {
        where = `entry [${first}]${rest.length > 0 ? ` field "${formatPath(rest)}"` : ''}`;
      } else where = `field "${formatPath(issue.path)}"`;
      return `${where} ${issue.message}`;
    })
    .join('; ');
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}
