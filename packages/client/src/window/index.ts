// @atrium/client/window: sends MediaStreams between the windows of one
// application — a pop-out or always-on-top mini window, a second tab —
// with electron-peer-connection's API (seed 000). Same renderer: the stream
// object is handed over. Otherwise: WebRTC over loopback, signalled over a
// relay (BroadcastChannel in browsers, Electron IPC through the main-process
// hub from `@atrium/client/window/electron-main`). Document
// Picture-in-Picture where the browser has it.
export { WindowPeerConnection, type PeerInfo, type WindowPeerConnectionEvents, type WindowPeerConnectionOptions } from './peer-connection.ts';
export type { CloseReason, StreamInfo, Via } from './session.ts';
export { RELAY_CHANNEL, MAX_JSON_LENGTH, MAX_NAME_LENGTH, asRelayMessage, type RelayChannel, type RelayMessage } from './relay.ts';
export { createBroadcastRelay, DEFAULT_BROADCAST_NAME, type BroadcastRelayOptions } from './broadcast-relay.ts';
export { createIpcRendererRelay, type IpcRendererLike } from './ipc-renderer-relay.ts';
export { openPictureInPicture, pictureInPictureAvailable, type PictureInPictureOptions, type PictureInPictureView } from './pip.ts';
export { WindowRelayError, type WindowRelayErrorCode } from './errors.ts';
