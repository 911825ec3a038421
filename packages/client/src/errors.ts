// Errors the SDK reports: a stable `code` for programs and a sentence for
// people, the way the server reports its own errors. AtriumError is the one
// base class; each part of the SDK names its codes (ClientErrorCode here,
// MeshErrorCode in mesh/, WindowRelayErrorCode in window/).

/** The base of every error the SDK raises or reports: `code` is stable, `message` a sentence. */
export class AtriumError<Code extends string = string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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

/** An error of the Galène SDK (ServerConnection, Stream, TransferredFile). */
export class AtriumClientError extends AtriumError<ClientErrorCode> {
  override readonly name = 'AtriumClientError';
}

/** A readable one-line description of anything thrown. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
