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
  ) {
    super(message);
    this.name = 'CoreError';
  }
}

export function isCoreError(e: unknown): e is CoreError {
  return e instanceof CoreError;
}
