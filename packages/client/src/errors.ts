// Errors the SDK reports: a stable `code` for programs and a sentence for
// people, the way the server reports its own errors.

/** Stable identifiers of the errors raised or reported by the SDK. */
export type ClientErrorCode =
  /** A frame from the server is not JSON, or does not fit the protocol's schemas. */
  | 'bad-frame'
  /** The WebSocket is not open: the message was not sent. */
  | 'not-connected'
  /** The WebSocket failed, or the server did not answer pings in time. */
  | 'socket'
  /** The server speaks a protocol version other than "2". */
  | 'bad-version'
  /** Creating or applying an SDP offer or answer failed. */
  | 'negotiation'
  /** A method was called with arguments it cannot use. */
  | 'bad-argument'
  /** The peer-to-peer file-transfer protocol went wrong. */
  | 'file-transfer';

export class AtriumClientError extends Error {
  override readonly name = 'AtriumClientError';

  constructor(
    readonly code: ClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A readable one-line description of anything thrown. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
