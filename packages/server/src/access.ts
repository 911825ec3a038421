// Who may join a group: a token (JWT signed by one of the group's authKeys,
// or a stateful invite token) or a username and password checked against
// the group file. Maps the auth modules' errors onto the core's.
import type { Permission } from './core/vocabulary.ts';
import { AuthError } from './auth/errors.ts';
import { type LoginAttempt, type LoginThrottle, LoginThrottledError } from './auth/throttle.ts';
import { authenticateWithToken } from './auth/index.ts';
import type { TokenStore } from './auth/tokens.ts';
import { CoreError } from './core/errors.ts';
import type { Authenticator, Credentials, Identity } from './core/registry.ts';
import { type GroupDescription, authenticateUnnamed, authenticateWithPassword } from './groups/index.ts';

export class GroupAccess implements Authenticator {
  constructor(
    private readonly tokens: TokenStore,
    /** Failed logins, throttled per user and address; none when undefined. */
    private readonly throttle?: LoginThrottle | undefined,
    /** config.json's canonicalHost, read at each login: the host a "path" audience must be on. */
    private readonly canonicalHost: () => string | undefined = () => undefined,
  ) {}

  async authenticate(desc: GroupDescription, groupName: string, creds: Credentials, groupUrl: string): Promise<Identity> {
    if (creds.token) {
      // Tokens are not guessable, but a flood of bad ones from one address is still throttled.
      const attempt = this.begin({ address: creds.address, via: creds.via ?? 'join' });
      let who: { username: string | undefined; permissions: Permission[] };
      try {
        who = await authenticateWithToken({
          token: creds.token,
          groupName,
          groupUrl,
          authKeys: desc.authKeys,
          audience: desc.tokenAudience,
          ...canonical(this.canonicalHost()),
          tokens: this.tokens,
          // A client that names itself later counts as having given a name ('' for now).
          clientUsername: creds.username || (creds.namedLater ? '' : null),
          userExists: (name) => Object.hasOwn(desc.users, name),
        });
      } catch (e) {
        if (e instanceof AuthError) {
          if (e.code === 'need-username') attempt?.abandoned();
          else attempt?.failed(`${e.code}: ${e.message}`);
          throw new CoreError(e.code === 'need-username' ? 'need-username' : 'not-authorised', e.message);
        }
        attempt?.abandoned();
        throw e;
      }
      attempt?.succeeded();
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
    const name = creds.username ? `user "${creds.username}"` : 'an anonymous user';
    const attempt = this.begin({ user: { key: `${groupName}\n${creds.username ?? ''}`, label: `${name} of group "${groupName}"` }, address: creds.address, via: creds.via ?? 'join' });
    let who;
    try {
      who = await authenticateWithPassword(desc, creds.username || undefined, creds.password);
    } catch (e) {
      attempt?.abandoned();
      throw e;
    }
    if (!who) {
      attempt?.failed('wrong username or password');
      throw new CoreError('not-authorised', `wrong username or password for ${name} in group "${groupName}"`);
    }
    attempt?.succeeded();
    return who;
  }

  /** Starts a throttled attempt; refuses it at once while the user or address must wait. */
  private begin(keys: Parameters<LoginThrottle['begin']>[0]): LoginAttempt | undefined {
    try {
      return this.throttle?.begin(keys);
    } catch (e) {
      if (e instanceof LoginThrottledError) throw new CoreError('rate-limited', e.message, e.retryAfterMs);
      throw e;
    }
  }
}

/** The canonicalHost option, only when one is configured (exactOptionalPropertyTypes). */
function canonical(host: string | undefined): { canonicalHost?: string } {
  return host === undefined ? {} : { canonicalHost: host };
}
