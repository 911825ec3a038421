// Token login for a group: a signed JWT when the string is one and the group
// has `authKeys`, otherwise a stateful token (invite link) from the token
// store. Given the client's username, it also applies Galène's username
// rules: a username in the token wins; if the token names nobody, the
// client's own username is used; a stateful token that names nobody, joined
// without a username, gets `need-username`.
import type { JsonWebKey } from 'node:crypto';
import type { Permission } from '../core/vocabulary.ts';
import { AuthError } from './errors.ts';
import { type AudienceRule, looksLikeJwt, verifyGroupJwt } from './jwt.ts';
import { checkStatefulToken, type TokenStore } from './tokens.ts';

export { AuthError, isAuthError, type AuthErrorCode } from './errors.ts';
export {
  type AudienceRule,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  looksLikeJwt,
  verifyGroupJwt,
  type VerifiedGroupJwt,
  type VerifyGroupJwtOptions,
} from './jwt.ts';
export {
  EXPIRED_TOKEN_RETENTION_MS,
  TOKENS_FILE,
  TokenFileError,
  TokenStore,
  checkStatefulToken,
  type CreateTokenOptions,
  type StatefulToken,
} from './tokens.ts';

export interface AuthenticateWithTokenOptions {
  token: string;
  groupName: string;
  /** e.g. `https://host/group/name/`; JWT audiences are matched against its path. */
  groupUrl: string;
  authKeys: readonly JsonWebKey[];
  tokens: TokenStore;
  /**
   * The username the client sent with `join` (null when it sent none). Give
   * it to have Galène's username rules applied here; leave it undefined to
   * get only what the token says (username undefined when it names nobody)
   * and decide yourself.
   */
  clientUsername?: string | null;
  /**
   * Whether a username belongs to a user defined in the group file. When a
   * token names nobody and the client picks such a name, Galène refuses the
   * login (the client would pose as that user). Used with clientUsername.
   */
  userExists?: (username: string) => boolean;
  /** How a JWT's `aud` names the group (the group's `token-audience`); see VerifyGroupJwtOptions.audience. */
  audience?: AudienceRule;
  /** See VerifyGroupJwtOptions.canonicalHost. */
  canonicalHost?: string;
  now?: Date;
}

export interface TokenLogin {
  /** Undefined for an anonymous login (no username anywhere). */
  username: string | undefined;
  permissions: Permission[];
}

/** Checks a token for a group; throws AuthError with a code and a plain reason. */
export async function authenticateWithToken(opts: AuthenticateWithTokenOptions): Promise<TokenLogin> {
  const { token } = opts;
  if (typeof token !== 'string' || token === '') {
    throw new AuthError('bad-token', 'the token is empty');
  }

  let fromToken: { username: string | undefined; permissions: Permission[] };
  let stateful: boolean;
  if (looksLikeJwt(token) && opts.authKeys.length > 0) {
    stateful = false;
    fromToken = await verifyGroupJwt(token, {
      keys: opts.authKeys,
      groupUrl: opts.groupUrl,
      ...(opts.audience !== undefined ? { audience: opts.audience } : {}),
      ...(opts.canonicalHost !== undefined ? { canonicalHost: opts.canonicalHost } : {}),
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    });
  } else {
    stateful = true;
    await opts.tokens.refresh();
    const found = opts.tokens.get(token);
    if (found === undefined && looksLikeJwt(token)) {
      throw new AuthError('not-authorised', "this group has no authKeys, so it cannot accept signed tokens (JWTs); add the issuer's key to the group");
    }
    fromToken = checkStatefulToken(found, opts.groupName, opts.now);
  }

  // A username in the token wins over the client's ('' counts as none).
  if (fromToken.username !== undefined && fromToken.username !== '') {
    return { username: fromToken.username, permissions: fromToken.permissions };
  }
  if (opts.clientUsername === undefined) {
    return { username: undefined, permissions: fromToken.permissions };
  }
  const clientName = opts.clientUsername;
  if (clientName === null) {
    // A stateful token that names nobody needs a username from the client;
    // an explicit empty username in the token, or a JWT without `sub`, is an anonymous login.
    if (stateful && fromToken.username === undefined) {
      throw new AuthError('need-username', 'this invitation does not include a username; choose one and join again');
    }
    return { username: undefined, permissions: fromToken.permissions };
  }
  if (clientName !== '' && opts.userExists?.(clientName) === true) {
    throw new AuthError('not-authorised', `the username "${clientName}" belongs to a registered user of this group; choose another one`);
  }
  return { username: clientName === '' ? undefined : clientName, permissions: fromToken.permissions };
}
