// Errors of the window relay: a stable `code` for programs and a sentence for
// people, the way the rest of the SDK reports its errors.

/** Stable identifiers of the errors the window relay raises or reports. */
export type WindowRelayErrorCode =
  /** A method was called with arguments it cannot use. */
  | 'bad-argument'
  /** The WindowPeerConnection (or the hub) was closed. */
  | 'closed'
  /** The named window did not answer in time: not open, not listening, or on another relay. */
  | 'unreachable'
  /** The named window turned the connection down (its `accept` option said no). */
  | 'refused'
  /** Creating or applying an SDP description or an ICE candidate failed. */
  | 'negotiation'
  /** A relay message that does not fit the wire format was dropped. */
  | 'bad-message'
  /** Two windows were registered under one name, or one window under two names. */
  | 'name-taken'
  /** Document Picture-in-Picture is missing, or the browser refused to open its window. */
  | 'pip-unavailable';

export class WindowRelayError extends Error {
  override readonly name = 'WindowRelayError';

  constructor(
    readonly code: WindowRelayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A readable one-line description of anything thrown. */
export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
