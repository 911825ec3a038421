// @atrium/client: the browser SDK for Atrium and other Galène protocol v2
// servers. The surface is Galène's own client (ServerConnection, Stream,
// TransferredFile), typed, with negotiation hidden inside and automatic
// reconnection. Built as one ESM file by `npm run build -w @atrium/client`.
export {
  ServerConnection,
  type ConnectionState,
  type GroupActionKind,
  type JoinedKind,
  type JoinedStatus,
  type ServerConnectionEvents,
  type ServerConnectionOptions,
  type User,
  type UserActionKind,
  type UserKind,
  type WebSocketLike,
} from './server-connection.ts';
export { Stream, SIMULCAST_LOW_RATE, simulcastEncodings, type AddTrackOptions, type MediaKind, type StreamStatus } from './stream.ts';
export { TransferredFile, CHUNK_BYTES, canTransition, type TransferEvent, type TransferEventData, type TransferProgress, type TransferState } from './file-transfer.ts';
export type { Credentials } from './credentials.ts';
export { AtriumClientError, AtriumError, type ClientErrorCode } from './errors.ts';
export { TypedEmitter, type Listener } from './emitter.ts';
export { DEFAULT_RECONNECT, backoffDelay, type ReconnectOptions, type ReconnectPolicy } from './backoff.ts';
export type { InboundTrackStats, OutboundTrackStats, StreamStats, TrackStats } from './stats.ts';
export type { StreamRequest } from '@atrium/protocol/galene';
