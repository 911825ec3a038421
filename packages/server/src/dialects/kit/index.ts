// The dialect kit: what every protocol adapter (Galène, Camus, RTCPool, and
// any new one) is built from, so that a dialect is its parser, its renderer
// and its mapping to core calls, and nothing else. docs/architecture.md has
// the picture and "How to add a dialect".
//
// Transport<Out, In> (transport.ts): anything that carries frames both ways.
//   send(frame) / sendBatch?(frames, sizes)   frames out, in order
//   sizeOf(frame)                             a frame's bytes on the wire
//   bufferedAmount                            bytes sent, not yet on the network
//   close(code, reason)                       after what was sent
//   ping?()                                   transport-level ping (WebSocket)
//   keepsItselfAlive?                         true: its own heartbeat (engine.io)
//   attach(sink)                              input: sink.receive(frame, size),
//                                             sink.heard(), sink.transportClosed()
//   Frames are opaque to the kit: text, bytes or objects, XML or JSON.
//   WebSocketTransport (websocket.ts) is the one for ws; RTCPool's socket.io
//   transport and an HTTP long-polling (BOSH) session are others.
//
// DialectConnection<Msg, In, Out> (connection.ts): one client of a dialect,
// a core Client. The dialect's connection extends it and writes:
//   parse(input): Parsed<Msg>          decode and validate one frame (never trusted)
//   handle(msg)                        core calls; throw CoreError to refuse
//   renderError(code, message): Out    the dialect's error frame (undefined: none)
//   deliver(event)                     core event -> frame(s), through send()
//   terminate(reason, why)             goodbye the dialect's way, then close()
//   optional: pingFrame(), heldDuringJoin(msg), onClosed()
// and uses:
//   send(frame, urgent?)    batched output; urgent: false may wait 150 ms (presence)
//   error(code, message)    a refusal, counted and rendered
//   fail(e)                 an exception as the dialect's error (unknown ones: 'internal', logged)
//   whileJoining(work)      run a join; frames meanwhile are held, then handled in order
//   joinGroup(req)          the registry's join for this client: joined (setMember done),
//                           redirect, or 'closed' (the connection went meanwhile)
//   setMember(m)            the client is in (or, with undefined, left)
//   setJoined(b)            in a group without being the member (XMPP: one member per room)
//   member, joining, closed
//   refuse(message)         a dropped message over a rate limit (warn once a second, close on flood)
//   close(code, reason)     close after what is queued, with the reason
//   count(kind)             the errors metric
// The kit does, for every dialect: the message rate limit and the flood
// close, the frame-size limit (1009 with the reason), metrics, the queue
// held during a join (256 at most), output bounded in bytes (MAX_QUEUED_BYTES
// counting the transport's own buffer; a slower reader is closed, 4004), the
// join timeout (DialectContext.joinTimeoutMs, --join-timeout, default 30 s),
// liveness (the dialect's ping or the transport's), Client.outputBacklog and
// the cleanup (the member leaves its group).
//
// Dialect (dialect.ts): the registration server.ts calls.
//   name; register(host: DialectHost); closeAll(reason)
//   DialectHost: app (fastify, @fastify/websocket registered), registry,
//   metrics, log, liveness, joinTimeoutMs, place(), address(req), web.
//   Connections: the live connections, for closeAll; contextOf(host).
//
// jsonFrame (json.ts): for JSON-over-WebSocket dialects, a text frame's JSON
// value or the refusal of a binary or malformed one.
export { CLOSE, DEFAULT_JOIN_TIMEOUT_MS, type DialectContext, DialectConnection, MAX_HELD_DURING_JOIN, type Parsed, type Rates, type ShellOptions } from './connection.ts';
export { type JsonFrameWords, jsonFrame } from './json.ts';
export { type AddressSource, Connections, type Dialect, type DialectHost, contextOf } from './dialect.ts';
export { LAZY_FLUSH_MS, MAX_QUEUED_BYTES, Outbox } from './outbox.ts';
export type { Transport, TransportSink } from './transport.ts';
export { WEBSOCKET_OPTIONS, WebSocketTransport, type WsFrame, frameSize, frameText } from './websocket.ts';
