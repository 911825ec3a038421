// Who may join a group: a token (JWT signed by one of the group's authKeys,
// or a stateful invite token) or a username and password checked against
// the group file. Maps the auth modules' errors onto the core's.
import type { Permission } from '@atrium/protocol/galene';
import { AuthError } from './auth/errors.ts';
import { authenticateWithToken } from './auth/index.ts';
import type { TokenStore } from './auth/tokens.ts';
import { CoreError } from './core/errors.ts';
import type { Authenticator, Credentials, Identity } from './core/registry.ts';
import { type GroupDescription, authenticateUnnamed, authenticateWithPassword } from './groups/index.ts';

export class GroupAccess implements Authenticator {
  constructor(private readonly tokens: TokenStore) {}

  async authenticate(desc: GroupDescription, groupName: string, creds: Credentials, groupUrl: string): Promise<Identity> {
    if (creds.token) {
      let who: { username: string | undefined; permissions: Permission[] };
      try {
        who = await authenticateWithToken({
          token: creds.token,
          groupName,
          groupUrl,
          authKeys: desc.authKeys,
          tokens: this.tokens,
          // A client that names itself later counts as having given a name ('' for now).
          clientUsername: creds.username || (creds.namedLater ? '' : null),
          userExists: (name) => Object.hasOwn(desc.users, name),
        });
      } catch (e) {
        if (e instanceof AuthError) {
          throw new CoreError(e.code === 'need-username' ? 'need-username' : 'not-authorised', e.message);
        }
        throw e;
      }
      // A token without a subject lets the user pick a name; a group that
      // refuses anonymous users then needs one.
      const username = who.username;
      if (username === undefined && !desc.allowAnonymous && !creds.namedLater) {
        throw new CoreError('need-username', 'this token does not name a user: choose a username and join again');
      }
      return { username, permissions: who.permissions };
    }
    if (!creds.username && creds.namedLater) {
      const who = await authenticateUnnamed(desc, creds.password);
      if (!who) {
        throw new CoreError(
          'not-authorised',
          `group "${groupName}" has no wildcard user that a client without a password may enter as; a group file needs "wildcard-user" with the password {"type": "wildcard"} for such clients (Camus's) to join`,
        );
      }
      return who;
    }
    if (!creds.username && !desc.allowAnonymous) {
      throw new CoreError('need-username', `group "${groupName}" does not allow anonymous users: give a username`);
    }
    const who = await authenticateWithPassword(desc, creds.username || undefined, creds.password);
    if (!who) {
      const name = creds.username ? `user "${creds.username}"` : 'an anonymous user';
      throw new CoreError('not-authorised', `wrong username or password for ${name} in group "${groupName}"`);
    }
    return who;
  }
}
