// A user changing their own password: the one set of rules for every way in
// (the admin API's `.password` endpoint under the user's own Basic
// credentials, as Galène's change-password page uses it, and anything else
// that offers it). A user may set only a password, which the server hashes
// with its own parameters; a definition (a hash, a wildcard) is for
// administrators and group files. Only a user listed in the group file with
// a password of their own may change it, after giving the current one.
import { isWellFormed } from '@atrium/protocol/text';
import type { LoginThrottle } from '../auth/throttle.ts';
import type { ServerConfig } from '../config/server-config.ts';
import type { GroupDescription } from './description.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import type { GroupStore, WriteResult } from './store.ts';

/** Longest password a user may set, in bytes (Galène reads at most this much). */
export const MAX_PASSWORD_BYTES = 4096;

export type PasswordChangeErrorCode =
  /** The group files are read-only (config.json has no `"writableGroups": true`). */
  | 'read-only'
  /** No such group, or no such user in it with a password of their own. */
  | 'no-such-user'
  /** The current password is wrong. */
  | 'not-authorised'
  /** Too many wrong passwords lately; `retryAfterMs` says when to try again. */
  | 'throttled'
  /** The new password is empty, too long or not text. */
  | 'bad-password';

export class PasswordChangeError extends Error {
  constructor(
    readonly code: PasswordChangeErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'PasswordChangeError';
  }
}

/** Whether users may change their own passwords on this server (`canChangePassword` in a group's .status). */
export function canChangePassword(config: Pick<ServerConfig, 'writableGroups'>, desc?: GroupDescription, username?: string): boolean {
  if (!config.writableGroups) return false;
  if (desc === undefined || username === undefined) return true;
  return hasOwnPassword(desc, username);
}

/** A user listed by name, with a password that is theirs (not a wildcard, which anyone matches). */
export function hasOwnPassword(desc: GroupDescription, username: string): boolean {
  if (username === '' || !Object.hasOwn(desc.users, username)) return false;
  const pw = desc.users[username]?.password;
  return pw !== undefined && (typeof pw === 'string' || pw.type !== 'wildcard');
}

/**
 * Checks `username`'s current password in `group` (throttled like a login:
 * pass `throttle` and `address`), without changing anything. Throws
 * PasswordChangeError when it does not open the account.
 */
export async function checkOwnPassword(opts: {
  groups: GroupStore;
  group: string;
  username: string;
  password: string;
  throttle?: LoginThrottle | undefined;
  address?: string | undefined;
  via?: string;
}): Promise<void> {
  const desc = opts.groups.get(opts.group);
  const who = `user "${opts.username}" of group "${opts.group}"`;
  if (desc === undefined || !hasOwnPassword(desc, opts.username)) {
    throw new PasswordChangeError('no-such-user', `${who} does not exist or has no password of their own; an administrator sets it`);
  }
  let attempt;
  try {
    attempt = opts.throttle?.begin({ user: { key: `${opts.group}\n${opts.username}`, label: who }, address: opts.address, via: opts.via ?? 'admin' });
  } catch (e) {
    const retry = (e as { retryAfterMs?: number }).retryAfterMs;
    throw new PasswordChangeError('throttled', (e as Error).message, retry);
  }
  const ok = await verifyPassword(desc.users[opts.username]!.password!, opts.password);
  if (!ok) {
    attempt?.failed('wrong current password');
    throw new PasswordChangeError('not-authorised', `wrong password for ${who}`);
  }
  attempt?.succeeded();
}

/**
 * Sets a user's own password, hashed by the server (PBKDF2, the server's
 * parameters), after `checkOwnPassword` said the current one is right.
 * The definition written never comes from the user.
 */
export async function setOwnPassword(opts: { groups: GroupStore; config: Pick<ServerConfig, 'writableGroups' | 'file'>; group: string; username: string; newPassword: string }): Promise<WriteResult> {
  if (!opts.config.writableGroups) {
    throw new PasswordChangeError('read-only', `passwords cannot be changed here: group definitions are read-only (set "writableGroups": true in ${opts.config.file})`);
  }
  const bytes = Buffer.byteLength(opts.newPassword, 'utf8');
  if (bytes === 0) throw new PasswordChangeError('bad-password', 'the new password is empty');
  if (bytes > MAX_PASSWORD_BYTES) throw new PasswordChangeError('bad-password', `the new password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  if (!isWellFormed(opts.newPassword)) throw new PasswordChangeError('bad-password', 'the new password is not well-formed text (it holds a lone UTF-16 surrogate)');
  const def = await hashPassword(opts.newPassword);
  const who = `user "${opts.username}" of group "${opts.group}"`;
  return opts.groups.modifyRaw(opts.group, (cur) => {
    const users = cur?.json.users;
    const entry = typeof users === 'object' && users !== null && !Array.isArray(users) ? (users as Record<string, unknown>)[opts.username] : undefined;
    if (cur === undefined || typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new PasswordChangeError('no-such-user', `${who} does not exist`);
    }
    return { ...cur.json, users: { ...(users as Record<string, unknown>), [opts.username]: { ...entry, password: def } } };
  });
}

/** Both steps: the current password, then the new one (what Galène's change-password page asks for). */
export async function changeOwnPassword(opts: {
  groups: GroupStore;
  config: Pick<ServerConfig, 'writableGroups' | 'file'>;
  group: string;
  username: string;
  currentPassword: string;
  newPassword: string;
  throttle?: LoginThrottle | undefined;
  address?: string | undefined;
}): Promise<WriteResult> {
  await checkOwnPassword({ ...opts, password: opts.currentPassword });
  return setOwnPassword(opts);
}
