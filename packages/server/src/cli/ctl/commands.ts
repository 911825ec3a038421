// The subcommands of `atrium ctl`: those of Galène's galenectl, with its
// option names, over the admin API (galene-api.md). Each has its --help.
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import bcrypt from 'bcryptjs';
import { type AdminApi, CtlError, header } from './api.ts';
import { type OptionSpec, jsonObjectOf, matchesPattern, parseCommand, parseDuration, readSecret, triStateValue } from './options.ts';

/** What every command gets: the global options, resolved. */
export interface CtlContext {
  server: string;
  insecure: boolean;
  configFile: string;
  adminUsername: string | undefined;
  adminPassword: string | undefined;
  adminToken: string | undefined;
  api(): AdminApi;
  out(text: string): void;
  err(text: string): void;
  /** Standard input, whole (for --json). */
  stdin(): Promise<string>;
}

export interface Command {
  description: string;
  usage: string;
  options: OptionSpec;
  /** Lines of help for each option, in order. */
  help: string[];
  triState?: string[];
  run(ctx: CtlContext, values: Record<string, unknown>, positionals: string[]): Promise<void>;
}

// ---------------------------------------------------------------------------
// Shared pieces

const groupOpt = { group: { type: 'string' } } as const;
const userOpts = { user: { type: 'string' }, wildcard: { type: 'boolean', default: false } } as const;
const hashOpts = {
  password: { type: 'string' },
  type: { type: 'string' },
  iterations: { type: 'string', default: '4096' },
  cost: { type: 'string', default: '8' },
  key: { type: 'string', default: '32' },
  salt: { type: 'string', default: '8' },
} as const;
const hashHelp = [
  '--type TYPE          bcrypt, pbkdf2 or wildcard',
  '--iterations N       pbkdf2 iterations (default 4096)',
  '--cost N             bcrypt cost (default 8)',
  '--key N              pbkdf2 key length in bytes (default 32)',
  '--salt N             pbkdf2 salt length in bytes (default 8)',
];

function needGroup(cmd: string, v: Record<string, unknown>, opts: { allowRoot?: boolean } = {}): string {
  const g = v.group as string | undefined;
  if (g === undefined || (g === '' && !opts.allowRoot)) throw new CtlError(`${cmd}: option --group is required`);
  return g;
}

/** --user NAME or --wildcard, exactly one (galenectl's rule). */
function userPath(cmd: string, v: Record<string, unknown>): string[] {
  const user = v.user as string | undefined;
  const wildcard = v.wildcard === true;
  if (wildcard === (user !== undefined && user !== '')) throw new CtlError(`${cmd}: exactly one of --user NAME and --wildcard is required`);
  return wildcard ? ['.wildcard-user'] : ['.users', user!];
}

function integer(cmd: string, name: string, v: unknown, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new CtlError(`${cmd}: --${name} must be a whole number from ${min} to ${max}, not "${String(v)}"`);
  return n;
}

/** A password definition made here, as galenectl makes them. */
export async function makePassword(cmd: string, password: string, v: Record<string, unknown>, defaultType = 'bcrypt'): Promise<Record<string, unknown>> {
  const type = (v.type as string | undefined) ?? defaultType;
  switch (type) {
    case 'bcrypt':
      return { type: 'bcrypt', key: await bcrypt.hash(password, integer(cmd, 'cost', v.cost ?? '8', 4, 16)) };
    case 'pbkdf2': {
      const salt = randomBytes(integer(cmd, 'salt', v.salt ?? '8', 1, 256));
      const iterations = integer(cmd, 'iterations', v.iterations ?? '4096', 1, 10_000_000);
      const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, integer(cmd, 'key', v.key ?? '32', 8, 256), 'sha256');
      return { type: 'pbkdf2', hash: 'sha-256', key: key.toString('hex'), salt: salt.toString('hex'), iterations };
    }
    case 'wildcard':
      if (password !== '') throw new CtlError(`${cmd}: a wildcard password takes no --password`);
      return { type: 'wildcard' };
    default:
      throw new CtlError(`${cmd}: unknown --type "${type}"; use bcrypt, pbkdf2 or wildcard`);
  }
}

async function passwordOf(v: Record<string, unknown>): Promise<string> {
  if (v.type === 'wildcard') return (v.password as string | undefined) ?? '';
  if (typeof v.password === 'string') return v.password;
  const pw = await readSecret('New password: ');
  if (pw === '') throw new CtlError('the password is empty');
  return pw;
}

/** A permissions option: a set name ("present") or a JSON array ('["present","token"]'). */
function permissionsOf(cmd: string, text: string): string | string[] {
  const p = text.trim();
  if (p === '') throw new CtlError(`${cmd}: --permissions is empty`);
  if (!p.startsWith('[')) return p;
  let a: unknown;
  try {
    a = JSON.parse(p);
  } catch (e) {
    throw new CtlError(`${cmd}: --permissions ${p} is not a JSON array (${(e as Error).message})`);
  }
  if (!Array.isArray(a) || !a.every((x) => typeof x === 'string')) throw new CtlError(`${cmd}: --permissions must be a set name or a JSON array of strings`);
  return a as string[];
}

/** galenectl's short form of a permission list: the first letters, sorted ("[mp]"). */
function letters(perms: string[], extra = ''): string {
  return `[${[...extra, ...perms.map((p) => p[0] ?? '?')].sort().join('')}]`;
}

function sorted(names: string[]): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function filter(names: string[], patterns: string[]): string[] {
  return patterns.length === 0 ? names : names.filter((n) => patterns.some((p) => matchesPattern(p, n)));
}

/** Local time as Go's time.DateTime prints it. */
function dateTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

async function exclusiveWrite(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  let h: Awaited<ReturnType<typeof open>>;
  try {
    h = await open(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new CtlError(`${file} exists already; move it away first (it is never overwritten)`);
    throw new CtlError(`cannot create ${file}: ${(e as Error).message}`);
  }
  try {
    await h.writeFile(text);
  } finally {
    await h.close();
  }
}

// ---------------------------------------------------------------------------
// The commands

export const COMMANDS: Record<string, Command> = {
  'hash-password': {
    description: 'generate a hashed password',
    usage: 'hash-password [--password PW] [--type bcrypt|pbkdf2|wildcard]',
    options: hashOpts,
    help: ['--password PW        the password (default: asked for, without echo)', ...hashHelp.map((l) => l.replace('bcrypt, pbkdf2 or wildcard', 'bcrypt (default), pbkdf2 or wildcard'))],
    async run(ctx, v) {
      const pw = await passwordOf(v);
      ctx.out(JSON.stringify(await makePassword('hash-password', pw, v)));
    },
  },

  'initial-setup': {
    description: 'initial setup of the server and of atrium ctl',
    usage: 'initial-setup --admin-username NAME [--admin-password PW | --admin-token T] [--data DIR]',
    options: { data: { type: 'string', default: './data' } },
    help: [
      "--data DIR           the server's data directory: DIR/config.json is written there",
      '                     with an administrator and "writableGroups": true (default ./data)',
      'The global --server, --admin-username, --admin-password and --admin-token are',
      'stored in the configuration file of atrium ctl (--config), so later commands need',
      'none of them. Neither file is ever overwritten.',
    ],
    async run(ctx, v) {
      if (!ctx.adminUsername) throw new CtlError('initial-setup: option --admin-username is required (give it before the command: atrium ctl --admin-username NAME initial-setup)');
      let password = ctx.adminPassword;
      if (!password && !ctx.adminToken) password = await readSecret('Administrator password: ');
      const serverConfig = join(resolve(v.data as string), 'config.json');
      const users = password ? { [ctx.adminUsername]: { password: await makePassword('initial-setup', password, { type: 'bcrypt', cost: '12' }), permissions: 'admin' } } : {};
      await exclusiveWrite(serverConfig, `${JSON.stringify({ writableGroups: true, users }, null, 4)}\n`);
      const ctl: Record<string, string> = { server: ctx.server, 'admin-username': ctx.adminUsername };
      if (password) ctl['admin-password'] = password;
      if (ctx.adminToken) ctl['admin-token'] = ctx.adminToken;
      await exclusiveWrite(ctx.configFile, `${JSON.stringify(ctl, null, 4)}\n`);
      ctx.out(`The file ${serverConfig} has been created; a running server picks it up at once.`);
      ctx.out(`The file ${ctx.configFile} has been created. It contains the administrator's password in cleartext: keep it secure.`);
    },
  },

  'set-password': {
    description: "set a user's password",
    usage: 'set-password --group G (--user U | --wildcard) [--password PW] [--type TYPE]',
    options: { ...groupOpt, ...userOpts, ...hashOpts },
    help: [
      '--group G            the group',
      '--user U             the user (or --wildcard for the wildcard user)',
      '--password PW        the new password (default: asked for, without echo)',
      'Without --type the password is sent to the server, which hashes it; with --type',
      "it is hashed here and the definition is sent (galenectl's way):",
      ...hashHelp,
    ],
    async run(ctx, v) {
      const group = needGroup('set-password', v);
      const path = userPath('set-password', v);
      const pw = await passwordOf(v);
      const api = ctx.api();
      const url = api.url('.groups', group, ...path, '.password');
      if (v.type === undefined) await api.ok('set-password', 'POST', url, { body: pw, contentType: 'text/plain; charset=utf-8' });
      else await api.ok('set-password', 'PUT', url, { body: JSON.stringify(await makePassword('set-password', pw, v)) });
    },
  },

  'delete-password': {
    description: "delete a user's password",
    usage: 'delete-password --group G (--user U | --wildcard)',
    options: { ...groupOpt, ...userOpts },
    help: ['--group G            the group', '--user U             the user (or --wildcard for the wildcard user)'],
    async run(ctx, v) {
      const group = needGroup('delete-password', v);
      const api = ctx.api();
      await api.ok('delete-password', 'DELETE', api.url('.groups', group, ...userPath('delete-password', v), '.password'));
    },
  },

  'list-groups': {
    description: 'list groups',
    usage: 'list-groups [PATTERN...]',
    options: {},
    help: ['PATTERN              only the groups matching one of these shell patterns (e.g. "team/*")'],
    async run(ctx, _v, patterns) {
      const api = ctx.api();
      const { value } = await api.getJson<string[]>('list-groups', api.url('.groups', ''));
      for (const g of filter(sorted(value), patterns)) ctx.out(g);
    },
  },

  'show-group': {
    description: 'show group definition',
    usage: 'show-group --group G',
    options: groupOpt,
    help: ['--group G            the group (its users and keys are never shown)'],
    async run(ctx, v) {
      const api = ctx.api();
      const { value } = await api.getJson<unknown>('show-group', api.url('.groups', needGroup('show-group', v)));
      ctx.out(JSON.stringify(value, null, 4));
    },
  },

  'create-group': {
    description: 'create a group',
    usage: 'create-group --group G [--unrestricted-tokens[=BOOL]] [--auto-subgroups[=BOOL]] [--json]',
    options: { ...groupOpt, 'unrestricted-tokens': { type: 'string' }, 'auto-subgroups': { type: 'string' }, json: { type: 'boolean', default: false } },
    triState: ['unrestricted-tokens', 'auto-subgroups'],
    help: [
      '--group G                    the group to create (it must not exist)',
      '--unrestricted-tokens[=BOOL] let ordinary users (with "present") create invitations',
      '--auto-subgroups[=BOOL]      create subgroups on first join',
      '--json                       read a group definition (JSON) from standard input; the',
      '                             options above override it',
    ],
    async run(ctx, v) {
      const group = needGroup('create-group', v);
      const data = v.json ? jsonObjectOf('create-group', await ctx.stdin()) : {};
      const ut = triStateValue(v['unrestricted-tokens']);
      const as = triStateValue(v['auto-subgroups']);
      if (ut !== undefined) data['unrestricted-tokens'] = ut;
      if (as !== undefined) data['auto-subgroups'] = as;
      const api = ctx.api();
      await api.ok('create-group', 'PUT', api.url('.groups', group), { body: JSON.stringify(data), headers: { 'if-none-match': '*' } });
    },
  },

  'update-group': {
    description: "change a group's definition",
    usage: 'update-group --group G [--unrestricted-tokens[=BOOL]] [--auto-subgroups[=BOOL]] [--json]',
    options: { ...groupOpt, 'unrestricted-tokens': { type: 'string' }, 'auto-subgroups': { type: 'string' }, json: { type: 'boolean', default: false } },
    triState: ['unrestricted-tokens', 'auto-subgroups'],
    help: [
      '--group G                    the group',
      '--unrestricted-tokens[=BOOL] let ordinary users (with "present") create invitations',
      '--auto-subgroups[=BOOL]      create subgroups on first join',
      '--json                       read fields (JSON) from standard input: each replaces the',
      "                             group's, null removes it",
    ],
    async run(ctx, v) {
      const group = needGroup('update-group', v);
      const data = v.json ? jsonObjectOf('update-group', await ctx.stdin()) : {};
      const ut = triStateValue(v['unrestricted-tokens']);
      const as = triStateValue(v['auto-subgroups']);
      const api = ctx.api();
      await api.update<Record<string, unknown>>('update-group', api.url('.groups', group), (m) => {
        for (const [k, x] of Object.entries(data)) {
          if (x === null) delete m[k];
          else m[k] = x;
        }
        if (ut !== undefined) m['unrestricted-tokens'] = ut;
        if (as !== undefined) m['auto-subgroups'] = as;
        return m;
      });
    },
  },

  'delete-group': {
    description: 'delete a group',
    usage: 'delete-group --group G',
    options: groupOpt,
    help: ['--group G            the group; its members are told and sent away'],
    async run(ctx, v) {
      const api = ctx.api();
      await api.ok('delete-group', 'DELETE', api.url('.groups', needGroup('delete-group', v)));
    },
  },

  'list-users': {
    description: 'list users',
    usage: 'list-users --group G [-l] [PATTERN...]',
    options: { ...groupOpt, l: { type: 'boolean', short: 'l', default: false } },
    help: ['--group G            the group', '-l                   with their permissions', 'PATTERN              only the users matching one of these shell patterns'],
    async run(ctx, v, patterns) {
      const group = needGroup('list-users', v);
      const api = ctx.api();
      const { value } = await api.getJson<string[]>('list-users', api.url('.groups', group, '.users', ''));
      for (const user of filter(sorted(value), patterns)) {
        if (!v.l) {
          ctx.out(user);
          continue;
        }
        try {
          const { value: d } = await api.getJson<{ permissions?: string | string[] }>('list-users', api.url('.groups', group, '.users', user));
          const p = d.permissions;
          ctx.out(`${user.padEnd(12)} ${typeof p === 'string' ? p : letters(p ?? [])}`);
        } catch (e) {
          ctx.out(`${user.padEnd(12)} (ERROR=${(e as Error).message})`);
        }
      }
    },
  },

  'create-user': {
    description: 'create a user',
    usage: 'create-user --group G (--user U | --wildcard) [--permissions P] [--json]',
    options: { ...groupOpt, ...userOpts, permissions: { type: 'string' }, json: { type: 'boolean', default: false } },
    help: [
      '--group G            the group',
      '--user U             the user (or --wildcard for the wildcard user)',
      '--permissions P      a set (op, present, message, observe, caption, admin) or a',
      '                     JSON array such as \'["present","token"]\' (default "present")',
      '--json               read the user definition (JSON) from standard input',
      'Give the user a password with set-password.',
    ],
    async run(ctx, v) {
      const group = needGroup('create-user', v);
      const path = userPath('create-user', v);
      const data = v.json ? jsonObjectOf('create-user', await ctx.stdin()) : {};
      if (v.permissions !== undefined) data.permissions = permissionsOf('create-user', v.permissions as string);
      else if (!('permissions' in data)) data.permissions = 'present';
      const api = ctx.api();
      await api.ok('create-user', 'PUT', api.url('.groups', group, ...path), { body: JSON.stringify(data), headers: { 'if-none-match': '*' } });
    },
  },

  'update-user': {
    description: "change a user's permissions",
    usage: 'update-user --group G (--user U | --wildcard) [--permissions P] [--json]',
    options: { ...groupOpt, ...userOpts, permissions: { type: 'string' }, json: { type: 'boolean', default: false } },
    help: [
      '--group G            the group',
      '--user U             the user (or --wildcard for the wildcard user)',
      '--permissions P      a set name or a JSON array of permissions',
      '--json               read fields (JSON) from standard input; null removes one',
    ],
    async run(ctx, v) {
      const group = needGroup('update-user', v);
      const path = userPath('update-user', v);
      const data = v.json ? jsonObjectOf('update-user', await ctx.stdin()) : {};
      const perms = v.permissions === undefined ? undefined : permissionsOf('update-user', v.permissions as string);
      const api = ctx.api();
      await api.update<Record<string, unknown>>('update-user', api.url('.groups', group, ...path), (m) => {
        for (const [k, x] of Object.entries(data)) {
          if (x === null) delete m[k];
          else m[k] = x;
        }
        if (perms !== undefined) m.permissions = perms;
        return m;
      });
    },
  },

  'delete-user': {
    description: 'delete a user',
    usage: 'delete-user --group G (--user U | --wildcard)',
    options: { ...groupOpt, ...userOpts },
    help: ['--group G            the group', '--user U             the user (or --wildcard for the wildcard user)'],
    async run(ctx, v) {
      const group = needGroup('delete-user', v);
      const api = ctx.api();
      await api.ok('delete-user', 'DELETE', api.url('.groups', group, ...userPath('delete-user', v)));
    },
  },

  'list-tokens': {
    description: 'list tokens',
    usage: 'list-tokens --group G [-l]',
    options: { ...groupOpt, l: { type: 'boolean', short: 'l', default: false } },
    help: ['--group G            the group ("" for global tokens)', '-l                   with user, permissions (H: hierarchical) and expiry'],
    async run(ctx, v) {
      const group = needGroup('list-tokens', v, { allowRoot: true });
      const api = ctx.api();
      const { value } = await api.getJson<string[]>('list-tokens', api.url('.groups', group, '.tokens', ''));
      const now = Date.now();
      for (const t of sorted(value)) {
        if (!v.l) {
          ctx.out(t);
          continue;
        }
        try {
          const { value: tok } = await api.getJson<{ username?: string; permissions?: string[]; expires?: string; includeSubgroups?: boolean }>('list-tokens', api.url('.groups', group, '.tokens', t));
          const exp = tok.expires === undefined ? '(no expiration date)' : Date.parse(tok.expires) < now ? '(expired)' : dateTime(new Date(tok.expires));
          ctx.out(
            `${t.padEnd(11)} ${(tok.username ?? '').padEnd(20)} ${letters(tok.permissions ?? [], tok.includeSubgroups ? 'H' : '')
              .slice(1, -1)
              .padEnd(4)} ${exp.padEnd(20)}`.trimEnd(),
          );
        } catch (e) {
          ctx.out(`${t.padEnd(12)} (ERROR=${(e as Error).message})`);
        }
      }
    },
  },

  'create-token': {
    description: 'request a token',
    usage: 'create-token --group G [--user U] [--permissions P] [--duration D] [--include-subgroups[=BOOL]]',
    options: { ...groupOpt, user: { type: 'string' }, permissions: { type: 'string', default: 'present' }, duration: { type: 'string', default: '24h' }, 'include-subgroups': { type: 'string' } },
    triState: ['include-subgroups'],
    help: [
      '--group G                  the group ("" with --include-subgroups: every group)',
      '--user U                   the username the token logs in as (default: the user picks one)',
      '--permissions P            a set name or a JSON array (default "present")',
      '--duration D               how long it is valid: 30m, 24h, 1h30m, 7d (default 24h)',
      '--include-subgroups[=BOOL] also valid in the subgroups of G',
      'Prints the token; its invitation link goes to standard error.',
    ],
    async run(ctx, v) {
      const group = needGroup('create-token', v, { allowRoot: true });
      const t: Record<string, unknown> = {
        permissions: permissionsOf('create-token', v.permissions as string),
        expires: new Date(Date.now() + parseDuration(v.duration as string, '--duration')).toISOString(),
      };
      if (v.user) t.username = v.user;
      const sub = triStateValue(v['include-subgroups']);
      if (sub !== undefined) t.includeSubgroups = sub;
      const api = ctx.api();
      const r = await api.ok('create-token', 'POST', api.url('.groups', group, '.tokens', ''), { body: JSON.stringify(t) });
      const location = header(r, 'location');
      if (!location) throw new CtlError("create-token: the server did not say the token's name (no Location header)");
      const name = decodeURIComponent(location.split('/').pop() ?? location);
      ctx.out(name);
      if (group !== '') ctx.err(`invitation link: ${new URL(`/group/${group.split('/').map(encodeURIComponent).join('/')}/?token=${encodeURIComponent(name)}`, api.base).href}`);
    },
  },

  'update-token': {
    description: "change a token's permissions, etc.",
    usage: 'update-token --group G --token T [--permissions P] [--duration D]',
    options: { ...groupOpt, token: { type: 'string' }, permissions: { type: 'string' }, duration: { type: 'string' } },
    help: [
      '--group G            the group of the token',
      '--token T            the token',
      '--permissions P      new permissions (a set name or a JSON array)',
      '--duration D         valid for D from now (e.g. 24h)',
    ],
    async run(ctx, v) {
      const group = needGroup('update-token', v, { allowRoot: true });
      if (!v.token) throw new CtlError('update-token: options --group and --token are required');
      const perms = v.permissions === undefined ? undefined : permissionsOf('update-token', v.permissions as string);
      const expires = v.duration === undefined ? undefined : new Date(Date.now() + parseDuration(v.duration as string, '--duration')).toISOString();
      const api = ctx.api();
      await api.update<Record<string, unknown>>('update-token', api.url('.groups', group, '.tokens', v.token as string), (t) => {
        if (perms !== undefined) t.permissions = perms;
        if (expires !== undefined) t.expires = expires;
        return t;
      });
    },
  },

  'revoke-token': {
    description: 'revoke a token',
    usage: 'revoke-token --group G --token T',
    options: { ...groupOpt, token: { type: 'string' } },
    help: ['--group G            the group of the token', '--token T            the token: it expires now, and is refused from then on'],
    async run(ctx, v) {
      const group = needGroup('revoke-token', v, { allowRoot: true });
      if (!v.token) throw new CtlError('revoke-token: options --group and --token are required');
      const api = ctx.api();
      await api.update<Record<string, unknown>>('revoke-token', api.url('.groups', group, '.tokens', v.token as string), (t) => ({ ...t, expires: new Date(Date.now() - 60e3).toISOString() }));
    },
  },

  'delete-token': {
    description: 'delete a token',
    usage: 'delete-token --group G --token T',
    options: { ...groupOpt, token: { type: 'string' } },
    help: ['--group G            the group of the token', '--token T            the token'],
    async run(ctx, v) {
      const group = needGroup('delete-token', v, { allowRoot: true });
      if (!v.token) throw new CtlError('delete-token: options --group and --token are required');
      const api = ctx.api();
      await api.ok('delete-token', 'DELETE', api.url('.groups', group, '.tokens', v.token as string));
    },
  },
};

export function commandHelp(c: Command): string {
  return `Usage: atrium ctl [global options] ${c.usage}\n\n${c.description[0]!.toUpperCase()}${c.description.slice(1)}.\n\n${c.help.map((l) => `  ${l}`).join('\n')}\n`;
}

export { parseCommand };
