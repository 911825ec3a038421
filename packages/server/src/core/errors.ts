// Errors the core raises when a rule refuses something. Each carries a
// stable code (for programs, sent on the wire as `error`) and a sentence for
// people (sent as `value`). The codes are the core's (vocabulary.ts); each
// dialect renders them in its own wire form.
import type { ErrorCode } from './vocabulary.ts';

export type { ErrorCode };

export class CoreError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For 'rate-limited': how long the client must wait (HTTP dialects send it as Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'CoreError';
  }
}

/** Retry-After for a refusal that says how long to wait, in whole seconds (at least 1). */
export function retryAfterHeader(e: CoreError): Record<string, string> {
  return e.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) };
}

export function isCoreError(e: unknown): e is CoreError {
  return e instanceof CoreError;
}
