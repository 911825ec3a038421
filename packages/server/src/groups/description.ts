// Group definitions: the schema of a Galène group file (`groups/<name>.json`,
// galene.md "Group description reference") and its conversion into the
// `GroupDescription` the rest of the server uses.
import type { JsonWebKey } from 'node:crypto';
import { z } from 'zod';
import { PERMISSIONS, type Permission, isPermission } from '../core/vocabulary.ts';

/** A password as stored in a group file or in data/config.json. */
export type PasswordDefinition = string | { type: 'pbkdf2'; hash: 'sha-256'; key: string; salt: string; iterations: number } | { type: 'bcrypt'; key: string } | { type: 'wildcard' };

export interface UserDescription {
  password?: PasswordDefinition;
  /** Expanded from a named set or taken from an array. */
  permissions: Permission[];
}

export interface GroupDescription {
  name: string;
  file: string;
  public: boolean;
  displayName?: string;
  description?: string;
  /** A human-readable contact, ignored by the server. */
  contact?: string;
  /** A human-readable comment, ignored by the server. */
  comment?: string;
  users: Record<string, UserDescription>;
  wildcardUser?: UserDescription;
  authKeys: JsonWebKey[];
  /**
   * How the `aud` of a signed token must name this group (`token-audience`):
   * 'url', the default, the group's full URL (scheme, host, port and path);
   * 'path', Galène's rule, only its path (`/group/<name>/`), for issuers
   * that know the group but not the address clients reach it at.
   */
  tokenAudience: 'url' | 'path';
  /** In a cluster: place the group on a node of this region (`--region`) when one is live (Atrium's `region`). */
  region?: string;
  /** In a cluster: place the group on a node that has every one of these labels (`--label`) when one is live (Atrium's `labels`). */
  labels?: string[];
  authServer?: string;
  authPortal?: string;
  maxClients?: number;
  /** Seconds; Galène's default is 4 hours. */
  maxHistoryAge: number;
  allowRecording: boolean;
  allowAnonymous: boolean;
  /** Ordinary users (with `present`) may create tokens. */
  unrestrictedTokens: boolean;
  autoSubgroups: boolean;
  autolock: boolean;
  autokick: boolean;
  redirect?: string;
  codecs?: string[];
  notBefore?: Date;
  expires?: Date;
  /** Obsolete fields that were converted, worth a log line. */
  warnings: string[];
  /** The JSON as on disk. */
  raw: Record<string, unknown>;
}

/** Chat history is kept this long unless the group says otherwise (galene.md). */
export const DEFAULT_MAX_HISTORY_AGE = 4 * 3600;

/** Codecs Galène knows (galene.md, "codecs"). */
export const KNOWN_CODECS = ['vp8', 'vp9', 'av1', 'h264', 'opus', 'g722', 'pcmu', 'pcma'] as const;

/** The permission sets a user definition may name (galene.md). */
export const PERMISSION_SETS = {
  op: ['op', 'present', 'message', 'caption', 'token'],
  present: ['present', 'message'],
  message: ['message'],
  observe: [],
  caption: ['caption'],
  admin: ['admin'],
} as const satisfies Record<string, readonly Permission[]>;
export type PermissionSetName = keyof typeof PERMISSION_SETS;

/** A group file that cannot be used; the message names the file and the field. */
export class GroupFileError extends Error {
  readonly code = 'group-file-invalid';
  constructor(
    readonly file: string,
    /** Dotted path of the offending field, or undefined for the whole file. */
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    super(field === undefined ? `${file}: ${reason}` : `${file}: field "${field}": ${reason}`);
    this.name = 'GroupFileError';
  }
}

// ---------------------------------------------------------------------------
// Schemas

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Hash parameters a definition may use, wherever it comes from (group
 * files, data/config.json, the admin API): each login costs the server one
 * hash, so a definition must not be able to make that cost minutes. About
 * 0.3 s (PBKDF2) and 0.5 s (bcrypt) of one core here; Galène's tools write
 * 4096 iterations and cost 8 to 10.
 */
export const HASH_LIMITS = {
  pbkdf2MaxIterations: 1_000_000,
  /** Longest derived key and salt, in bytes (Galène's are 32 and 8). */
  pbkdf2MaxKeyBytes: 64,
  pbkdf2MaxSaltBytes: 64,
  bcryptMinCost: 4,
  bcryptMaxCost: 12,
} as const;

/** A bcrypt hash in modular crypt format: `$2a$10$` then 22 characters of salt and 31 of hash. */
const BCRYPT_HASH = /^\$2[abxy]?\$(\d{2})\$[./A-Za-z0-9]{53}$/;

/** The cost of a bcrypt hash, or undefined when the string is not one. */
export function bcryptCost(key: string): number | undefined {
  const m = BCRYPT_HASH.exec(key);
  return m === null ? undefined : Number(m[1]);
}

const pbkdf2Password = z.strictObject({
  type: z.literal('pbkdf2'),
  hash: z.literal('sha-256'),
  key: z
    .string()
    .regex(/^([0-9a-fA-F]{2})+$/, 'expected a hexadecimal string')
    .max(2 * HASH_LIMITS.pbkdf2MaxKeyBytes, `a key of at most ${HASH_LIMITS.pbkdf2MaxKeyBytes} bytes (${2 * HASH_LIMITS.pbkdf2MaxKeyBytes} hexadecimal digits)`),
  salt: z
    .string()
    .regex(/^([0-9a-fA-F]{2})*$/, 'expected a hexadecimal string')
    .max(2 * HASH_LIMITS.pbkdf2MaxSaltBytes, `a salt of at most ${HASH_LIMITS.pbkdf2MaxSaltBytes} bytes (${2 * HASH_LIMITS.pbkdf2MaxSaltBytes} hexadecimal digits)`),
  iterations: z.number().int().min(1).max(HASH_LIMITS.pbkdf2MaxIterations),
});
const bcryptPassword = z.strictObject({
  type: z.literal('bcrypt'),
  key: z.string().superRefine((key, ctx) => {
    const cost = bcryptCost(key);
    if (cost === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a bcrypt hash such as "$2a$10$" followed by 53 characters' });
    } else if (cost < HASH_LIMITS.bcryptMinCost || cost > HASH_LIMITS.bcryptMaxCost) {
      ctx.addIssue({
        code: 'custom',
        message: `bcrypt cost ${cost} is outside ${HASH_LIMITS.bcryptMinCost}..${HASH_LIMITS.bcryptMaxCost}: each login would cost the server too much; hash the password again with a cost of at most ${HASH_LIMITS.bcryptMaxCost} (atrium hash-password --type bcrypt uses 10)`,
      });
    }
  }),
});
const wildcardPassword = z.strictObject({ type: z.literal('wildcard') });
/** `{type: "plain", key}` is how Galène represents a plain password internally. */
const plainPassword = z.strictObject({ type: z.literal('plain'), key: z.string() });

const passwordTypes: Record<string, z.ZodType> = {
  pbkdf2: pbkdf2Password,
  bcrypt: bcryptPassword,
  wildcard: wildcardPassword,
  plain: plainPassword,
};

/** A password definition: a plain string or a typed object. */
export const passwordDefinitionSchema = z.unknown().transform((v, ctx): PasswordDefinition => {
  if (typeof v === 'string') return v;
  if (!isPlainObject(v)) {
    ctx.addIssue({ code: 'custom', message: 'expected a string (a plain password) or an object (a hashed password)' });
    return z.NEVER;
  }
  const type = v.type;
  const schema = typeof type === 'string' ? passwordTypes[type] : undefined;
  if (schema === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['type'],
      message: `unknown password type ${JSON.stringify(type)}; expected "pbkdf2", "bcrypt", "wildcard" or "plain"`,
    });
    return z.NEVER;
  }
  const r = schema.safeParse(v);
  if (!r.success) {
    for (const issue of r.error.issues) {
      ctx.addIssue({ code: 'custom', path: issue.path as PropertyKey[], message: describeIssue(issue).message });
    }
    return z.NEVER;
  }
  const def = r.data as { type: string; key?: string };
  if (def.type === 'plain') return def.key ?? '';
  return r.data as PasswordDefinition;
});

/** What the `permissions` field holds before expansion. */
export type PermissionsField = { set: PermissionSetName } | { list: Permission[] };

const permissionNames = PERMISSIONS;

export const permissionsFieldSchema = z.unknown().transform((v, ctx): PermissionsField => {
  if (typeof v === 'string') {
    if (Object.hasOwn(PERMISSION_SETS, v)) return { set: v as PermissionSetName };
    ctx.addIssue({
      code: 'custom',
      message: `unknown permission set ${JSON.stringify(v)}; expected one of ${quoteList(Object.keys(PERMISSION_SETS))} or an array of permissions`,
    });
    return z.NEVER;
  }
  if (Array.isArray(v)) {
    const list: Permission[] = [];
    v.forEach((p, i) => {
      if (isPermission(p)) {
        if (!list.includes(p)) list.push(p);
      } else {
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: `unknown permission ${JSON.stringify(p)}; expected one of ${quoteList(permissionNames)}`,
        });
      }
    });
    return { list };
  }
  ctx.addIssue({ code: 'custom', message: 'expected the name of a permission set (such as "present") or an array of permissions' });
  return z.NEVER;
});

/** A user entry (`users.<name>`, `wildcard-user`, or a config.json user). */
export const userDefinitionSchema = z.strictObject({
  password: passwordDefinitionSchema.optional(),
  permissions: permissionsFieldSchema.optional(),
});
export type UserDefinition = z.output<typeof userDefinitionSchema>;

/** A JSON Web Key; Galène requires `alg` to be given explicitly. */
export const jwkSchema = z.looseObject({
  kty: z.string().min(1),
  alg: z.string().min(1),
  kid: z.string().optional(),
});

const rfc3339 = z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time such as "2025-06-01T18:00:00Z"' });

/** Galène 0.6-era user lists, still accepted by Galène and converted. */
const legacyClientPattern = z.strictObject({
  username: z.string().optional(),
  password: passwordDefinitionSchema.optional(),
});

/** Every field of a Galène group file. Unknown fields are refused, as Galène does. */
export const groupFileSchema = z.strictObject({
  users: z.record(z.string(), userDefinitionSchema).optional(),
  'wildcard-user': userDefinitionSchema.optional(),
  authKeys: z.array(jwkSchema).optional(),
  // Atrium's: "url" (default) or "path"; see GroupDescription.tokenAudience.
  'token-audience': z.enum(['url', 'path']).optional(),
  // Atrium's: in a cluster, the region of the nodes the group is placed on.
  region: z.string().min(1).max(100).optional(),
  // Atrium's: in a cluster, the labels a node must have to get the group (each one `--label` of the node).
  labels: z
    .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a label is letters, digits, "_", ".", ":" or "-" (at most 64)'))
    .max(16)
    .optional(),
  authServer: z.string().optional(),
  authPortal: z.string().optional(),
  public: z.boolean().optional(),
  displayName: z.string().optional(),
  description: z.string().optional(),
  contact: z.string().optional(),
  comment: z.string().optional(),
  'max-clients': z.number().int().min(0).optional(),
  'max-history-age': z.number().int().min(0).optional(),
  'not-before': rfc3339.optional(),
  expires: rfc3339.optional(),
  'allow-recording': z.boolean().optional(),
  'unrestricted-tokens': z.boolean().optional(),
  'allow-anonymous': z.boolean().optional(),
  'auto-subgroups': z.boolean().optional(),
  autolock: z.boolean().optional(),
  autokick: z.boolean().optional(),
  redirect: z.string().optional(),
  codecs: z.array(z.enum(KNOWN_CODECS)).optional(),
  // Obsolete, converted like Galène does.
  op: z.array(legacyClientPattern).optional(),
  presenter: z.array(legacyClientPattern).optional(),
  other: z.array(legacyClientPattern).optional(),
  'allow-subgroups': z.boolean().optional(),
});
export type GroupFile = z.output<typeof groupFileSchema>;

/** Fields a group file may contain, for messages. */
export const GROUP_FILE_FIELDS = Object.keys(groupFileSchema.shape);

// ---------------------------------------------------------------------------
// Error messages

function quoteList(items: readonly string[]): string {
  return items.map((s) => JSON.stringify(s)).join(', ');
}

const TYPE_NAMES: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  object: 'an object',
  array: 'an array',
  record: 'an object',
};

interface DescribedIssue {
  path: PropertyKey[];
  message: string;
}

/** Turns one zod issue into a field path and a short sentence. */
export function describeIssue(issue: z.core.$ZodIssue): DescribedIssue {
  const path = [...issue.path];
  switch (issue.code) {
    case 'invalid_type': {
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      return { path, message: `expected ${expected}` };
    }
    case 'unrecognized_keys': {
      const key = issue.keys[0] ?? '';
      const more = issue.keys.length > 1 ? ` (also unknown: ${quoteList(issue.keys.slice(1))})` : '';
      return { path: [...path, key], message: `unknown field${more}` };
    }
    case 'invalid_value':
      return { path, message: `expected ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${quoteList(issue.values.map(String))}`}` };
    case 'too_small':
      return { path, message: issue.origin === 'number' ? `must be at least ${String(issue.minimum)}` : issue.message };
    case 'too_big':
      return { path, message: issue.origin === 'number' ? `must be at most ${String(issue.maximum)}` : issue.message };
    case 'invalid_format':
      return { path, message: issue.message.startsWith('Invalid') ? `has the wrong format (${issue.format})` : issue.message };
    default:
      return { path, message: issue.message };
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
    .join('.')
    .replace(/\.\[/g, '[');
}

/** The error for a failed parse: the first problem, and how many more there are. */
export function issuesToError(file: string, error: z.ZodError): GroupFileError {
  const issues = error.issues.map(describeIssue);
  const first = issues[0];
  if (first === undefined) return new GroupFileError(file, undefined, 'invalid');
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  const field = first.path.length > 0 ? formatPath(first.path) : undefined;
  return new GroupFileError(file, field, first.message + more);
}

// ---------------------------------------------------------------------------
// Conversion

/** Expands a permissions field the way Galène does for a given group. */
export function expandPermissions(field: PermissionsField | undefined, group?: { allowRecording: boolean; unrestrictedTokens: boolean }): Permission[] {
  if (field === undefined) return [];
  if ('list' in field) return [...field.list];
  const perms: Permission[] = [...PERMISSION_SETS[field.set]];
  // Named sets only: an explicit array is taken as written.
  if (group?.allowRecording && perms.includes('op') && !perms.includes('record')) perms.push('record');
  if (group?.unrestrictedTokens && perms.includes('present') && !perms.includes('token')) perms.push('token');
  return perms;
}

function toUser(u: UserDefinition, group?: { allowRecording: boolean; unrestrictedTokens: boolean }): UserDescription {
  const out: UserDescription = { permissions: expandPermissions(u.permissions, group) };
  if (u.password !== undefined) out.password = u.password;
  return out;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/**
 * Validates a group file and returns its description.
 * `name` is the group name, `file` the path used in error messages.
 * Throws GroupFileError naming the file and the field.
 */
export function parseGroupDescription(name: string, file: string, json: unknown): GroupDescription {
  if (!isPlainObject(json)) {
    throw new GroupFileError(file, undefined, 'expected a JSON object ({...}) at the top level');
  }
  // Go's decoder treats null as "not set"; so do we.
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (v !== null) input[k] = v;

  const r = groupFileSchema.safeParse(input);
  if (!r.success) throw issuesToError(file, r.error);
  const f = r.data;
  const warnings: string[] = [];

  const flags = {
    allowRecording: f['allow-recording'] ?? false,
    unrestrictedTokens: f['unrestricted-tokens'] ?? false,
  };

  const users: Record<string, UserDescription> = {};
  for (const [username, u] of Object.entries(f.users ?? {})) users[username] = toUser(u, flags);
  let wildcardUser = f['wildcard-user'] === undefined ? undefined : toUser(f['wildcard-user'], flags);

  // Obsolete op/presenter/other lists: converted as Galène converts them.
  const legacy: [keyof GroupFile & ('op' | 'presenter' | 'other'), PermissionSetName][] = [
    ['op', 'op'],
    ['presenter', 'present'],
    ['other', 'message'],
  ];
  for (const [key, set] of legacy) {
    const list = f[key];
    if (list === undefined) continue;
    warnings.push(`field "${key}" is obsolete; it was converted to "users" / "wildcard-user" entries with permissions "${set}"`);
    for (const entry of list) {
      const user = toUser({ password: entry.password ?? { type: 'wildcard' }, permissions: { set } }, flags);
      if (entry.username === undefined || entry.username === '') {
        if (wildcardUser === undefined) wildcardUser = user;
        else warnings.push(`field "${key}": a second wildcard entry was ignored`);
      } else if (Object.hasOwn(users, entry.username)) {
        warnings.push(`field "${key}": duplicate user "${entry.username}" was ignored`);
      } else {
        users[entry.username] = user;
      }
    }
  }
  if (f['allow-subgroups'] !== undefined) {
    warnings.push('field "allow-subgroups" is obsolete; it is read as "auto-subgroups"');
  }

  const maxHistoryAge = f['max-history-age'];
  const desc: GroupDescription = {
    name,
    file,
    public: f.public ?? false,
    users,
    authKeys: (f.authKeys ?? []).map((k) => ({ ...k }) as JsonWebKey),
    tokenAudience: f['token-audience'] ?? 'url',
    ...(f.region !== undefined ? { region: f.region } : {}),
    ...(f.labels !== undefined && f.labels.length > 0 ? { labels: [...f.labels] } : {}),
    maxHistoryAge: maxHistoryAge === undefined || maxHistoryAge === 0 ? DEFAULT_MAX_HISTORY_AGE : maxHistoryAge,
    allowRecording: flags.allowRecording,
    allowAnonymous: f['allow-anonymous'] ?? false,
    unrestrictedTokens: flags.unrestrictedTokens,
    autoSubgroups: f['auto-subgroups'] ?? f['allow-subgroups'] ?? false,
    autolock: f.autolock ?? false,
    autokick: f.autokick ?? false,
    warnings,
    raw: json,
  };
  const displayName = nonEmpty(f.displayName);
  if (displayName !== undefined) desc.displayName = displayName;
  const description = nonEmpty(f.description);
  if (description !== undefined) desc.description = description;
  const contact = nonEmpty(f.contact);
  if (contact !== undefined) desc.contact = contact;
  const comment = nonEmpty(f.comment);
  if (comment !== undefined) desc.comment = comment;
  const authServer = nonEmpty(f.authServer);
  if (authServer !== undefined) desc.authServer = authServer;
  const authPortal = nonEmpty(f.authPortal);
  if (authPortal !== undefined) desc.authPortal = authPortal;
  const redirect = nonEmpty(f.redirect);
  if (redirect !== undefined) desc.redirect = redirect;
  if (wildcardUser !== undefined) desc.wildcardUser = wildcardUser;
  if (f['max-clients'] !== undefined && f['max-clients'] > 0) desc.maxClients = f['max-clients'];
  if (f.codecs !== undefined && f.codecs.length > 0) desc.codecs = [...f.codecs];
  if (f['not-before'] !== undefined) desc.notBefore = new Date(f['not-before']);
  if (f.expires !== undefined) desc.expires = new Date(f.expires);
  if (desc.notBefore && desc.expires && desc.notBefore.getTime() >= desc.expires.getTime()) {
    throw new GroupFileError(file, 'expires', 'must be later than "not-before"');
  }
  return desc;
}
