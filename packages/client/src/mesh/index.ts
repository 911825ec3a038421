// The mesh SDK of @atrium/client: browsers connected to each other directly,
// the server only relaying signalling. One Pool API over Camus rooms and
// RTCPool pools (raw WebSocket or socket.io); one perfect-negotiation core
// under every connection.
//
//   import { Pool, CamusSignaling } from '@atrium/client/mesh';
//   const pool = new Pool(new CamusSignaling(location.origin));
//   pool.on('track', (conn, { track }) => attach(conn.id, track));
//   pool.publish(camera, stream);
//   await pool.join('standup');
//
// Any EventTarget with `send(type, data)` carries RTCPool's protocol too
// (`new Pool(new RtcPoolTransceiver(target))`), and Camus's own client
// classes (`Manager`, `Signaler`, `VideoPeer`) sit over the same Pool.
export { Pool, type PoolEvents, type PoolOptions, type PoolState } from './pool.ts';
export { ManagedConnection, type CloseReason, type ConnectionEvents, type RemoteTrack } from './connection.ts';
export { Signaling, type SignalingChannel, type Description, type JoinedInfo, type PeerInfo, type SignalingEvents, type SignalingProtocol } from './signaling.ts';
export { CamusSignaling, type CamusEvents, type CamusSignalingOptions, type CamusSocketState, type CamusText } from './camus-signaling.ts';
export { Manager, Signaler, VideoPeer, type ManagerEvents, type ManagerOptions, type ResponseParams, type SignalerEvents, type VideoPeerEvents } from './camus-client.ts';
export { RtcPoolSignaling, RtcPoolSocketIo, RtcPoolWebSocket, type RtcPoolWebSocketOptions, type SocketIoLike } from './rtcpool-signaling.ts';
export { RtcPoolTransceiver, Transceiver, type TransceiverLike } from './transceiver.ts';
export { PerfectNegotiator, type NegotiationSignals, type NegotiationStats, type NegotiatorHooks } from './negotiator.ts';
export { TypedEmitter, type Listener } from '../emitter.ts';
export { MeshError, type MeshErrorCode } from './errors.ts';
