// Errors of the window relay: a stable `code` for programs and a sentence for
// people, the way the rest of the SDK reports its errors.
import { AtriumError, describeError } from '../errors.ts';

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

/** An error of the window relay. */
export class WindowRelayError extends AtriumError<WindowRelayErrorCode> {
  override readonly name = 'WindowRelayError';
}

/** A readable one-line description of anything thrown. */
export { describeError as describe };
