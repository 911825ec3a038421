// The server-wide configuration, Galène's `data/config.json` (galene.md, "The
// global configuration file"): administrators, whether the admin API may
// write group files, allowed origins, proxy URL, canonical host. A missing
// file means defaults; edits on disk are picked up by ServerConfigWatcher.
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log.ts';
import { describeIssue, expandPermissions, formatPath, passwordDefinitionSchema, userDefinitionSchema, type UserDescription } from '../groups/description.ts';

export interface ServerConfig {
  /** The file this came from (it may not exist). */
  file: string;
  /** Administrators; only the `admin` permission means anything here. */
  users: Record<string, UserDescription>;
  /** Whether the admin API may modify group definitions. */
  writableGroups: boolean;
  /** Origins allowed to use the server (CORS), besides its own. */
  allowOrigin: string[];
  /** Origins allowed to use the admin API (CORS), besides its own. */
  allowAdminOrigin: string[];
  /** The root URL seen from outside when behind a reverse proxy. */
  proxyURL?: string;
  /** Whether any origin may read public information (Galène's `publicServer`). */
  publicServer: boolean;
  /** Clients using another host name are redirected to this one. */
  canonicalHost?: string;
  /** Atrium's: this server as a node of a cluster (read at start; `atrium serve --redis …` overrides it). */
  cluster?: ClusterFileSettings;
  /** The JSON as on disk ({} when there is no file). */
  raw: Record<string, unknown>;
}

/** The `cluster` section of data/config.json: the same as serve's --redis, --node-id, --public-url, --internal-url, --region, --label, --drain-timeout. */
export interface ClusterFileSettings {
  redis?: string;
  nodeId?: string;
  publicUrl?: string;
  internalUrl?: string;
  region?: string;
  labels?: string[];
  /** Seconds. */
  drainTimeout?: number;
}

/** data/config.json cannot be used; the message names the file and the field. */
export class ServerConfigError extends Error {
  readonly code = 'server-config-invalid';
  constructor(
    readonly file: string,
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    super(field === undefined ? `${file}: ${reason}` : `${file}: field "${field}": ${reason}`);
    this.name = 'ServerConfigError';
  }
}

/** Every field of data/config.json; unknown fields are refused, as Galène does. */
export const serverConfigSchema = z.strictObject({
  users: z.record(z.string(), userDefinitionSchema).optional(),
  writableGroups: z.boolean().optional(),
  allowOrigin: z.array(z.string()).optional(),
  allowAdminOrigin: z.array(z.string()).optional(),
  proxyURL: z.url({ error: 'expected an absolute URL such as "https://example.org/galene/"' }).or(z.literal('')).optional(),
  publicServer: z.boolean().optional(),
  canonicalHost: z.string().optional(),
  cluster: z
    .strictObject({
      redis: z
        .string()
        .regex(/^rediss?:\/\//, 'expected a Redis URL such as "redis://10.0.0.5:6379"')
        .optional(),
      nodeId: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected letters, digits, "-" or "_" (at most 64)')
        .optional(),
      publicUrl: z.url().optional(),
      internalUrl: z.url().optional(),
      region: z.string().min(1).optional(),
      labels: z
        .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a label is letters, digits, "_", ".", ":" or "-" (at most 64)'))
        .max(16)
        .optional(),
      drainTimeout: z.number().min(0).max(86400).optional(),
    })
    .optional(),
  // Obsolete: a list of {username, password} administrators.
  admin: z.array(z.strictObject({ username: z.string().min(1, 'an administrator needs a username'), password: passwordDefinitionSchema.optional() })).optional(),
});

export function configFileOf(dataDir: string): string {
  return path.join(dataDir, 'config.json');
}

export function defaultServerConfig(file: string): ServerConfig {
  return { file, users: {}, writableGroups: false, allowOrigin: [], allowAdminOrigin: [], publicServer: false, raw: {} };
}

/** Validates the JSON of data/config.json. Throws ServerConfigError. */
export function parseServerConfig(file: string, json: unknown): ServerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ServerConfigError(file, undefined, 'expected a JSON object ({...}) at the top level');
  }
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (v !== null) input[k] = v;
  const r = serverConfigSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues.map(describeIssue);
    const first = issues[0]!;
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
    throw new ServerConfigError(file, first.path.length > 0 ? formatPath(first.path) : undefined, first.message + more);
  }
  const c = r.data;
  const users: Record<string, UserDescription> = {};
  for (const [name, u] of Object.entries(c.users ?? {})) {
    const user: UserDescription = { permissions: expandPermissions(u.permissions) };
    if (u.password !== undefined) user.password = u.password;
    users[name] = user;
  }
  for (const a of c.admin ?? []) {
    if (Object.hasOwn(users, a.username)) continue;
    users[a.username] = { password: a.password ?? { type: 'wildcard' }, permissions: ['admin'] };
  }
  const config = defaultServerConfig(file);
  config.users = users;
  config.writableGroups = c.writableGroups ?? false;
  config.allowOrigin = c.allowOrigin ?? [];
  config.allowAdminOrigin = c.allowAdminOrigin ?? [];
  config.publicServer = c.publicServer ?? false;
  if (c.proxyURL !== undefined && c.proxyURL !== '') config.proxyURL = c.proxyURL;
  if (c.canonicalHost !== undefined && c.canonicalHost !== '') config.canonicalHost = c.canonicalHost;
  if (c.cluster !== undefined) config.cluster = Object.fromEntries(Object.entries(c.cluster).filter(([, v]) => v !== undefined)) as ClusterFileSettings;
  config.raw = json as Record<string, unknown>;
  return config;
}

async function readConfigFile(file: string): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return defaultServerConfig(file);
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ServerConfigError(file, undefined, `not valid JSON (${(err as Error).message})`);
  }
  return parseServerConfig(file, json);
}

/** Reads data/config.json; a missing file gives the defaults. Throws ServerConfigError when it is invalid. */
export async function loadServerConfig(dataDir: string, log: Logger): Promise<ServerConfig> {
  const config = await readConfigFile(configFileOf(dataDir));
  if (config.raw.admin !== undefined) {
    log.warn({ file: config.file }, 'field "admin" is obsolete; use "users" with permissions "admin"');
  }
  return config;
}

interface WatcherEvents {
  change: [config: ServerConfig];
}

/**
 * Keeps the configuration current: re-reads data/config.json when it changes
 * (debounced); an invalid edit is logged and the last good version is kept.
 */
export class ServerConfigWatcher extends EventEmitter<WatcherEvents> {
  private config: ServerConfig;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly dataDir: string;
  private readonly log: Logger;

  constructor(opts: { dataDir: string; log: Logger }) {
    super();
    this.dataDir = opts.dataDir;
    this.log = opts.log;
    this.config = defaultServerConfig(configFileOf(opts.dataDir));
  }

  /** The current configuration; pass `() => watcher.current` where a getter is wanted. */
  get current(): ServerConfig {
    return this.config;
  }

  /** Loads the file (throws if it is invalid at start-up) and starts watching the data directory. */
  async start(): Promise<ServerConfig> {
    this.config = await loadServerConfig(this.dataDir, this.log);
    try {
      this.watcher = watch(this.dataDir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename.toString() === 'config.json') this.schedule();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch (err) {
      this.log.warn({ dir: this.dataDir, err: (err as Error).message }, 'cannot watch the data directory; edits to config.json need a restart');
    }
    return this.config;
  }

  /** Re-reads the file now. */
  async reload(): Promise<ServerConfig> {
    try {
      this.config = await loadServerConfig(this.dataDir, this.log);
      this.emit('change', this.config);
    } catch (err) {
      this.log.warn({ reason: (err as Error).message }, 'config.json refused; keeping the last good version');
    }
    return this.config;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, 100);
  }
}
