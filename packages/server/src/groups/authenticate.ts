// Username/password login against a group definition, with Galène's rules:
// a user listed in `users` must give that user's password (no fallback to
// the wildcard user); any other username is checked against `wildcard-user`;
// an empty username needs `allow-anonymous` or an explicit "" user entry.
import type { Permission } from '../core/vocabulary.ts';
import type { GroupDescription, UserDescription } from './description.ts';
import { verifyPassword } from './passwords.ts';

export interface PasswordLogin {
  username: string | undefined;
  permissions: Permission[];
}

async function check(user: UserDescription, password: string): Promise<Permission[] | null> {
  // A user entry without a password cannot be used to log in (galene.md:
  // "in order to be useful, a user entry needs to be assigned a password").
  if (user.password === undefined) return null;
  return (await verifyPassword(user.password, password)) ? [...user.permissions] : null;
}

/** Returns the granted permissions, or null when the login is refused. */
export async function authenticateWithPassword(desc: GroupDescription, username: string | undefined, password: string | undefined): Promise<PasswordLogin | null> {
  const name = username ?? '';
  const pw = password ?? '';

  if (Object.hasOwn(desc.users, name)) {
    const user = desc.users[name];
    if (user === undefined) return null;
    const perms = await check(user, pw);
    return perms === null ? null : { username, permissions: perms };
  }
  if (name === '' && !desc.allowAnonymous) return null;
  if (desc.wildcardUser === undefined) return null;
  const perms = await check(desc.wildcardUser, pw);
  return perms === null ? null : { username, permissions: perms };
}

/**
 * A client that enters before it has a name (Camus's, which names itself
 * with `profile` once inside) is the wildcard user: admitted with its
 * permissions when its password (usually none: `{"type": "wildcard"}`)
 * matches. Null when the group has no such user.
 */
export async function authenticateUnnamed(desc: GroupDescription, password: string | undefined): Promise<PasswordLogin | null> {
  if (desc.wildcardUser === undefined) return null;
  const perms = await check(desc.wildcardUser, password ?? '');
  return perms === null ? null : { username: undefined, permissions: perms };
}
