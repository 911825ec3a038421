// Errors of the mesh SDK: a stable `code` for programs and a sentence for
// people, as the server reports its own.
import { AtriumError, describeError } from '../errors.ts';

export type MeshErrorCode =
  /** The signalling socket could not be opened, or closed before the join completed. */
  | 'connect-failed'
  /** The server refused the join (full, not allowed, bad token); `message` says why. */
  | 'join-refused'
  /** `join` was called on a pool that is joining or joined. */
  | 'already-joined'
  /** An operation needs a joined pool. */
  | 'not-joined'
  /** The server reported an error about something this endpoint sent. */
  | 'server-error'
  /** A frame from the server is not JSON or does not fit the protocol's schemas. */
  | 'bad-frame'
  /** Creating or applying a description or a candidate failed. */
  | 'negotiation'
  /** The connection or pool is closed. */
  | 'closed';

/** An error of the mesh SDK (Pool, ManagedConnection, the signalling clients). */
export class MeshError extends AtriumError<MeshErrorCode> {
  override readonly name = 'MeshError';
}

/** A readable one-line description of anything thrown. */
export { describeError as describe };
