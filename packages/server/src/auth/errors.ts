// Why a login with a token (or password) was refused: a stable code for
// programs and a plain sentence for people.

export type AuthErrorCode =
  /** The credentials are well formed but do not open this group. */
  | 'not-authorised'
  /** The token is good but names no user and the client sent none: ask for one and retry. */
  | 'need-username'
  /** The token was good once and is past its expiry time. */
  | 'token-expired'
  /** The token cannot be trusted: malformed, bad signature, unknown key, bad claims. */
  | 'bad-token';

export class AuthError extends Error {
  readonly code: AuthErrorCode;

  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthError';
    this.code = code;
  }
}

export function isAuthError(e: unknown): e is AuthError {
  return e instanceof AuthError;
}
