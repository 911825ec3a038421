// Errors the core raises when a rule refuses something. Each carries a
// stable code (for programs, sent on the wire as `error`) and a sentence for
// people (sent as `value`).
import type { ErrorCode } from '@atrium/protocol/galene';

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
