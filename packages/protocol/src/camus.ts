// Wire schemas of the Camus room protocol (mesh rooms): every message is
// `{sender, receiver, type, data}` over a WebSocket at `/room/<id>/ws`. The
// server is the address "ground control"; "room" addresses everyone in the
// room; any other receiver is another client of the same room. One zod
// schema per message type, as for the Galène protocol; the server validates
// what clients send, the SDK and the tests validate what the server sends.
import { z } from 'zod';
import { type ErrorCode, LIMITS, describeIssues, iceCandidate, nestsDeeperThan } from './galene.ts';
import { wellFormedString } from './text.ts';

export { LIMITS, type ErrorCode };

/** The server's own address. */
export const SERVER_ADDRESS = 'ground control';
/** The address of every client in the sender's room. */
export const ROOM_ADDRESS = 'room';
/** What Camus calls a client that has not said its name. */
export const DEFAULT_USERNAME = 'Major Tom';

const address = wellFormedString(LIMITS.idChars).min(1);
/** The sender field is ignored: the server always sets it. */
const envelope = { sender: wellFormedString(LIMITS.idChars).nullish(), receiver: address };
/** Small values echoed back (ping data is a timestamp in practice). */
const scalar = z.union([z.number(), z.string().max(1024), z.boolean(), z.null()]);
const username = wellFormedString(LIMITS.usernameChars);
const sdp = z.string().max(LIMITS.sdpChars);

// ---------------------------------------------------------------------------
// Messages a client sends.

export const ping = z.object({ ...envelope, type: z.literal('ping'), data: scalar.optional() });
export const pong = z.object({ ...envelope, type: z.literal('pong'), data: scalar.optional() });
export const getRoomInfo = z.object({ ...envelope, type: z.literal('get-room-info'), data: scalar.optional() });
export const getIceServers = z.object({ ...envelope, type: z.literal('get-ice-servers'), data: scalar.optional() });
export const profile = z.object({
  ...envelope,
  type: z.literal('profile'),
  data: z.object({ username: username.optional() }),
});
export const greeting = z.object({ ...envelope, type: z.literal('greeting'), data: scalar.optional() });
export const bye = z.object({ ...envelope, type: z.literal('bye'), data: scalar.optional() });

export const textData = z.object({
  from: username.optional(),
  time: z.union([z.number(), z.string().max(64)]).optional(),
  text: z.string().max(LIMITS.chatChars),
});
export const text = z.object({ ...envelope, type: z.literal('text'), data: textData });

export const offerData = z.object({ type: z.literal('offer'), sdp });
export const offer = z.object({ ...envelope, type: z.literal('offer'), data: offerData });
export const answerData = z.object({ type: z.enum(['answer', 'pranswer']), sdp });
export const answer = z.object({ ...envelope, type: z.literal('answer'), data: answerData });
export const icecandidate = z.object({ ...envelope, type: z.literal('icecandidate'), data: iceCandidate });

/** Every message type a client may send, by `type`. */
export const clientMessageSchemas = {
  ping,
  pong,
  'get-room-info': getRoomInfo,
  'get-ice-servers': getIceServers,
  profile,
  greeting,
  bye,
  text,
  offer,
  answer,
  icecandidate,
} as const;
export type ClientMessageType = keyof typeof clientMessageSchemas;
export type ClientMessage = { [K in ClientMessageType]: z.infer<(typeof clientMessageSchemas)[K]> }[ClientMessageType];
export type ClientMessageOf<K extends ClientMessageType> = z.infer<(typeof clientMessageSchemas)[K]>;

/** Types the server answers itself when addressed to "ground control". */
export const SERVER_HANDLED_TYPES: readonly ClientMessageType[] = ['ping', 'pong', 'profile', 'get-room-info', 'get-ice-servers', 'greeting', 'bye'];
/** Types relayed to "room" or to another client. */
export const RELAYED_TYPES: readonly ClientMessageType[] = ['text', 'offer', 'answer', 'icecandidate', 'bye'];

// ---------------------------------------------------------------------------
// Messages the server sends.

const fromServer = { sender: z.string(), receiver: z.string() };

export const roomInfoData = z.object({
  room_id: z.string(),
  clients: z.array(z.object({ id: z.string(), username: z.string() })),
});
export type RoomInfo = z.infer<typeof roomInfoData>;

/** An ICE server as Camus lists it: always a URL array, and whether it is a STUN or a TURN server. */
export const iceServerEntry = z.object({
  urls: z.array(z.string()).min(1),
  username: z.string().optional(),
  credential: z.string().optional(),
  kind: z.enum(['stun', 'turn']),
});
export type IceServerEntry = z.infer<typeof iceServerEntry>;

export const serverMessageSchemas = {
  ping: z.object({ ...fromServer, type: z.literal('ping'), data: scalar.optional() }),
  pong: z.object({ ...fromServer, type: z.literal('pong'), data: scalar.optional() }),
  'room-info': z.object({ ...fromServer, type: z.literal('room-info'), data: roomInfoData }),
  'ice-servers': z.object({ ...fromServer, type: z.literal('ice-servers'), data: z.array(iceServerEntry) }),
  greeting: z.object({ ...fromServer, type: z.literal('greeting'), data: scalar.optional() }),
  bye: z.object({ ...fromServer, type: z.literal('bye'), data: scalar.optional() }),
  /** Camus's own server answers unknown types so; Atrium never sends it (Camus's client has no handler for it). */
  error: z.object({ ...fromServer, type: z.literal('error'), data: z.string() }),
  /**
   * Chat from a peer; from ground control, what the server refuses (Atrium
   * tells Camus clients so, in a type they show): then `error` is the stable code.
   */
  text: z.object({ ...fromServer, type: z.literal('text'), data: z.object({ from: z.string(), time: z.number(), text: z.string(), error: z.string().optional() }) }),
  offer: z.object({ ...fromServer, type: z.literal('offer'), data: offerData }),
  answer: z.object({ ...fromServer, type: z.literal('answer'), data: answerData }),
  icecandidate: z.object({ ...fromServer, type: z.literal('icecandidate'), data: iceCandidate }),
} as const;
export type ServerMessageType = keyof typeof serverMessageSchemas;
export type ServerMessageOf<K extends ServerMessageType> = z.infer<(typeof serverMessageSchemas)[K]>;
export type ServerMessage = { [K in ServerMessageType]: ServerMessageOf<K> }[ServerMessageType];

// ---------------------------------------------------------------------------

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ErrorCode; message: string /** The offending type, for "unknown-type". */; type?: string };

/** Validates one decoded frame from a client; never throws. */
export function parseClientMessage(frame: unknown): ParseResult {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return { ok: false, error: 'bad-message', message: 'a message must be a JSON object {sender, receiver, type, data}' };
  }
  if (nestsDeeperThan(frame, LIMITS.nestingDepth)) {
    return { ok: false, error: 'too-large', message: `a message may nest arrays and objects at most ${LIMITS.nestingDepth} levels deep` };
  }
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== 'string') return { ok: false, error: 'bad-message', message: 'a message needs a string field "type"' };
  if (!Object.hasOwn(clientMessageSchemas, type)) {
    return { ok: false, error: 'unknown-type', message: `Unknown message type: ${type.slice(0, 64)}`, type: type.slice(0, 64) };
  }
  const receiver = (frame as { receiver?: unknown }).receiver;
  if (typeof receiver !== 'string' || receiver === '') {
    return { ok: false, error: 'bad-message', message: `a "${type}" message needs a "receiver": "${SERVER_ADDRESS}", "${ROOM_ADDRESS}" or a client id` };
  }
  const r = clientMessageSchemas[type as ClientMessageType].safeParse(frame);
  if (!r.success) return { ok: false, error: 'bad-message', message: `bad "${type}" message: ${describeIssues(r.error)}` };
  return { ok: true, message: r.data as ClientMessage };
}
