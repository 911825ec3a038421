// Short fuzz pass over RTCPool's ssp on /pool/ws and socket.io (see support/short-pass.ts).
import { shortPass } from './support/short-pass.ts';

shortPass(['rtcpool-ws', 'socketio']);
