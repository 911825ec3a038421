// Wire schemas of the Galène protocol, version "2" (galene-protocol.md).
// One zod schema per message type; the server validates every frame it
// receives against `clientMessage`, and the client SDK validates what the
// server sends against `serverMessage`. Types are inferred from the schemas,
// so the two sides cannot drift apart. Galène's server is written in Go,
// whose JSON decoder reads `null` as "not set": `parseClientMessage` does
// the same for every field of every message, once, before validation.
import { z } from 'zod';
import { wellFormedString } from './text.ts';

export { isWellFormed } from './text.ts';

/** Upper bounds that keep one message from costing the server much. */
export const LIMITS = {
  /** Largest WebSocket frame accepted, in bytes. */
  frameBytes: 256 * 1024,
  /** Longest chat message, in characters. */
  chatChars: 32 * 1024,
  idChars: 256,
  usernameChars: 256,
  passwordChars: 4096,
  tokenChars: 16 * 1024,
  groupNameChars: 256,
  sdpChars: 128 * 1024,
  /** Largest `data` object (user or group data), serialized, in bytes. */
  dataBytes: 16 * 1024,
  /**
   * Deepest nesting of arrays and objects in a frame (the frame itself is
   * level 1). Deeper values would overflow the stack of JSON.stringify when
   * the server checks or relays them.
   */
  nestingDepth: 64,
} as const;

// Names and ids from the network are well-formed Unicode (see text.ts).
const id = wellFormedString(LIMITS.idChars);
const username = wellFormedString(LIMITS.usernameChars);
/** A JSON object of application data, bounded in size. */
const dataObject = z.record(z.string(), z.unknown()).refine((v) => JSON.stringify(v).length <= LIMITS.dataBytes, {
  message: `must be at most ${LIMITS.dataBytes} bytes as JSON`,
});

/** Every permission a Galène group knows about. */
export const permission = z.enum(['op', 'present', 'message', 'caption', 'token', 'record', 'admin']);
export type Permission = z.infer<typeof permission>;

/** Stream labels a publisher may use. */
export const streamLabel = z.enum(['camera', 'screenshare', 'video']);
export type StreamLabel = z.infer<typeof streamLabel>;

/** What a subscriber asks for, per label (`''` is the default). */
export const requestedMedia = z.array(z.enum(['audio', 'video', 'video-low'])).max(3);
export const streamRequest = z.record(z.string().max(64), requestedMedia);
export type StreamRequest = z.infer<typeof streamRequest>;

export const iceCandidate = z.object({
  candidate: z.string().max(4096),
  sdpMid: z.string().max(64).nullish(),
  sdpMLineIndex: z.number().int().min(0).max(1024).nullish(),
  usernameFragment: z.string().max(256).nullish(),
});
export type IceCandidate = z.infer<typeof iceCandidate>;

export const iceServer = z.object({
  urls: z.union([z.string(), z.array(z.string())]),
  username: z.string().optional(),
  credential: z.string().optional(),
});
export type IceServer = z.infer<typeof iceServer>;

export const rtcConfiguration = z.object({
  iceServers: z.array(iceServer).optional(),
  iceTransportPolicy: z.enum(['all', 'relay']).optional(),
});
export type RtcConfiguration = z.infer<typeof rtcConfiguration>;

/** The group status of `.status` and of `joined.status`. */
export const groupStatus = z.object({
  name: z.string(),
  location: z.string(),
  endpoint: z.string(),
  displayName: z.string().optional(),
  description: z.string().optional(),
  authServer: z.string().optional(),
  authPortal: z.string().optional(),
  locked: z.boolean().optional(),
  clientCount: z.number().int().optional(),
  canChangePassword: z.boolean().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});
export type GroupStatus = z.infer<typeof groupStatus>;

// ---------------------------------------------------------------------------
// Messages a client sends to the server.

export const handshake = z.object({
  type: z.literal('handshake'),
  /** Galène's server goes on, with a warning, when this lacks "2" (or is missing). */
  version: z.array(z.string().max(16)).max(16).optional(),
  id: id.optional(),
});
export const ping = z.object({ type: z.literal('ping') });
export const pong = z.object({ type: z.literal('pong') });

export const join = z.object({
  type: z.literal('join'),
  kind: z.enum(['join', 'leave']),
  group: wellFormedString(LIMITS.groupNameChars).min(1),
  username: username.optional(),
  password: z.string().max(LIMITS.passwordChars).optional(),
  token: z.string().max(LIMITS.tokenChars).optional(),
  data: dataObject.optional(),
});

export const request = z.object({
  type: z.literal('request'),
  /** Absent (or null): nothing is requested. */
  request: streamRequest.optional(),
});

const sdp = z.string().max(LIMITS.sdpChars);

export const offer = z.object({
  type: z.literal('offer'),
  id,
  label: z.string().max(64).optional(),
  replace: id.optional(),
  source: id.optional(),
  username: username.optional(),
  sdp,
});
export const answer = z.object({ type: z.literal('answer'), id, sdp });
export const ice = z.object({ type: z.literal('ice'), id, candidate: iceCandidate });
export const renegotiate = z.object({ type: z.literal('renegotiate'), id });
export const requestStream = z.object({
  type: z.literal('requestStream'),
  id,
  /** Absent (or null, as Galène's client sends it): back to what `request` asks for this stream's label. */
  request: requestedMedia.optional(),
});
export const close = z.object({ type: z.literal('close'), id });
export const abort = z.object({ type: z.literal('abort'), id });

export const chatKind = z.enum(['', 'me', 'caption']);
export const chat = z.object({
  type: z.literal('chat'),
  kind: chatKind.nullish(),
  source: id.optional(),
  username: username.nullish(),
  dest: id.nullish(),
  privileged: z.boolean().optional(),
  time: z.union([z.string().max(64), z.number()]).nullish(),
  noecho: z.boolean().optional(),
  value: z.string().max(LIMITS.chatChars),
});

/** The file-transfer sub-protocol carried in `usermessage` of kind `filetransfer`. */
export const fileTransferValue = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('invite'),
    version: z.array(z.string().max(16)).min(1).max(8),
    id,
    name: z.string().max(1024),
    size: z.number().int().min(0),
    mimetype: z.string().max(256).optional(),
  }),
  z.object({ type: z.literal('offer'), version: z.array(z.union([z.string(), z.number()])).max(8), id, sdp }),
  z.object({ type: z.literal('answer'), id, sdp }),
  // Galène's client sends a null candidate when gathering ends.
  z.object({ type: z.literal('ice'), id, candidate: iceCandidate.nullable() }),
  z.object({ type: z.literal('cancel'), id, message: z.string().max(4096).optional() }),
]);
export type FileTransferValue = z.infer<typeof fileTransferValue>;

export const userMessageKind = z.enum(['error', 'warning', 'info', 'kicked', 'clearchat', 'mute', 'filetransfer', 'token', 'tokenlist', 'userinfo']);
export const usermessage = z.object({
  type: z.literal('usermessage'),
  kind: z.string().min(1).max(64),
  source: id.optional(),
  username: username.nullish(),
  dest: id.nullish(),
  privileged: z.boolean().optional(),
  value: z.unknown().optional(),
  noecho: z.boolean().optional(),
});

export const userActionKind = z.enum(['op', 'unop', 'present', 'unpresent', 'shutup', 'unshutup', 'kick', 'identify', 'setdata']);
export type UserActionKind = z.infer<typeof userActionKind>;
export const useraction = z.object({
  type: z.literal('useraction'),
  kind: userActionKind,
  source: id.optional(),
  username: username.nullish(),
  dest: id.nullish(),
  value: z.unknown().optional(),
});

export const groupActionKind = z.enum(['clearchat', 'lock', 'unlock', 'record', 'unrecord', 'subgroups', 'setdata', 'maketoken', 'edittoken', 'listtokens']);
export type GroupActionKind = z.infer<typeof groupActionKind>;

/**
 * A time in a token template, as Galène reads it: an RFC 3339 string is a
 * moment, a number is milliseconds from now (negative: in the past, which is
 * how Galène's client revokes an invitation).
 */
export const tokenTime = z.union([
  z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time such as "2030-01-31T12:00:00Z", or milliseconds from now' }),
  z.number().int().min(-1e15).max(1e15),
]);
export type TokenTime = z.infer<typeof tokenTime>;

/** Go reads null as "not set", inside a token template too. */
const templateField = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);

/**
 * The value of `groupaction` `maketoken` (Galène's token template) and of
 * `edittoken` (the token's name and the times to change). As in Galène,
 * other fields are ignored: `issuedBy`, `issuedAt` and `includeSubgroups`
 * are the server's to set.
 */
export const tokenTemplate = z.object({
  token: templateField(wellFormedString(LIMITS.tokenChars).refine((s) => s !== '', { message: 'must not be empty' })),
  group: templateField(wellFormedString(LIMITS.groupNameChars)),
  username: templateField(username),
  permissions: templateField(z.array(permission).max(16)),
  expires: templateField(tokenTime),
  'not-before': templateField(tokenTime),
});
export type TokenTemplate = z.output<typeof tokenTemplate>;
/** @deprecated the name before edittoken: use tokenTemplate. */
export const makeTokenValue = tokenTemplate;
export type MakeTokenValue = TokenTemplate;

export const groupaction = z.object({
  type: z.literal('groupaction'),
  kind: groupActionKind,
  source: id.optional(),
  username: username.nullish(),
  value: z.unknown().optional(),
});

/** Every message type a client may send, by `type`. */
export const clientMessageSchemas = {
  handshake,
  ping,
  pong,
  join,
  request,
  offer,
  answer,
  ice,
  renegotiate,
  requestStream,
  close,
  abort,
  chat,
  usermessage,
  useraction,
  groupaction,
} as const;
export type ClientMessageType = keyof typeof clientMessageSchemas;
export type ClientMessage = { [K in ClientMessageType]: z.infer<(typeof clientMessageSchemas)[K]> }[ClientMessageType];
export type ClientMessageOf<K extends ClientMessageType> = z.infer<(typeof clientMessageSchemas)[K]>;

/** A message type where every optional field may also be null, as Go reads it (absent). */
export type GoNullable<T> = { [P in keyof T]: undefined extends T[P] ? T[P] | null : T[P] };
/**
 * What a client may put on the wire: a ClientMessage whose optional fields
 * may also be null (Galène's client sends `replace: null`, `request: null`,
 * `dest: null`…). The server reads such a null as an absent field.
 */
export type ClientFrame = { [K in ClientMessageType]: GoNullable<ClientMessageOf<K>> }[ClientMessageType];
export type ClientFrameOf<K extends ClientMessageType> = GoNullable<ClientMessageOf<K>>;

// ---------------------------------------------------------------------------
// Messages the server sends to a client.

export const joined = z.object({
  type: z.literal('joined'),
  kind: z.enum(['join', 'fail', 'change', 'leave', 'redirect']),
  group: z.string(),
  username: z.string().optional(),
  permissions: z.array(z.string()).optional(),
  status: groupStatus.partial().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  rtcConfiguration: rtcConfiguration.optional(),
  error: z.string().optional(),
  value: z.unknown().optional(),
});
export const user = z.object({
  type: z.literal('user'),
  kind: z.enum(['add', 'change', 'delete']),
  id,
  username: z.string().optional(),
  permissions: z.array(z.string()).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});
const serverChatFields = {
  /** The message's id (public messages): an operator deletes one by it. */
  id: z.string().optional(),
  kind: z.string().optional(),
  source: z.string().optional(),
  username: z.string().optional(),
  dest: z.string().optional(),
  privileged: z.boolean().optional(),
  time: z.string().optional(),
  noecho: z.boolean().optional(),
  value: z.string(),
};
export const serverChat = z.object({ type: z.literal('chat'), ...serverChatFields });
export const chathistory = z.object({ type: z.literal('chathistory'), ...serverChatFields });
export const serverUsermessage = z.object({
  type: z.literal('usermessage'),
  kind: z.string(),
  source: z.string().optional(),
  username: z.string().optional(),
  dest: z.string().optional(),
  privileged: z.boolean().optional(),
  /** Galène servers may stamp relayed messages (ISO 8601); Atrium does not. */
  time: z.union([z.string().max(64), z.number()]).optional(),
  error: z.string().optional(),
  value: z.unknown().optional(),
});
export const serverHandshake = z.object({ type: z.literal('handshake'), version: z.array(z.string()), id: z.string().optional() });
export const serverOffer = offer.extend({ kind: z.enum(['offer', 'renegotiate']).optional() });

export const serverMessageSchemas = {
  handshake: serverHandshake,
  ping,
  pong,
  joined,
  user,
  chat: serverChat,
  chathistory,
  usermessage: serverUsermessage,
  offer: serverOffer,
  answer,
  ice,
  renegotiate,
  close,
  abort,
} as const;
export type ServerMessageType = keyof typeof serverMessageSchemas;
export type ServerMessage = { [K in ServerMessageType]: z.infer<(typeof serverMessageSchemas)[K]> }[ServerMessageType];
export type ServerMessageOf<K extends ServerMessageType> = z.infer<(typeof serverMessageSchemas)[K]>;

/** Stable identifiers carried in the `error` field of error replies. */
export const ERROR_CODES = [
  'bad-json',
  'bad-message',
  'unknown-type',
  'too-large',
  'rate-limited',
  'bad-version',
  'not-joined',
  'already-joined',
  'no-such-group',
  'not-authorised',
  'need-username',
  'group-locked',
  'too-many-clients',
  'group-not-open',
  'group-expired',
  'not-permitted',
  'no-such-token',
  'no-such-user',
  'not-supported',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ErrorCode; message: string };

/** Validates one decoded frame from a client; never throws. */
export function parseClientMessage(frame: unknown): ParseResult {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return { ok: false, error: 'bad-message', message: 'a message must be a JSON object' };
  }
  if (nestsDeeperThan(frame, LIMITS.nestingDepth)) {
    return { ok: false, error: 'too-large', message: `a message may nest arrays and objects at most ${LIMITS.nestingDepth} levels deep` };
  }
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, error: 'bad-message', message: 'a message needs a string field "type"' };
  }
  if (!Object.hasOwn(clientMessageSchemas, type)) {
    return { ok: false, error: 'unknown-type', message: `unknown message type "${type.slice(0, 64)}"` };
  }
  const schema = clientMessageSchemas[type as ClientMessageType];
  let result;
  try {
    result = schema.safeParse(withoutNulls(frame as Record<string, unknown>));
  } catch {
    // A refinement threw (it should not); the frame is refused, not the server.
    return { ok: false, error: 'bad-message', message: `bad "${type}" message: it could not be checked` };
  }
  if (!result.success) {
    return { ok: false, error: 'bad-message', message: `bad "${type}" message: ${describeIssues(result.error)}` };
  }
  return { ok: true, message: result.data as ClientMessage };
}

/**
 * The frame with its null fields removed: Go's decoder, which Galène's
 * server uses, leaves a field it reads as null unset, so `"replace": null`
 * means no replace and `"dest": null` no destination. Only the message's own
 * fields: nulls inside `value`, `data` or `request` mean something there
 * (`setdata` deletes a key set to null) and are kept.
 */
export function withoutNulls(frame: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in frame) {
    if (frame[k] !== null) continue;
    out ??= { ...frame };
    delete out[k];
  }
  return out ?? frame;
}

/** Whether a decoded JSON value nests arrays and objects deeper than `max` levels; iterative, so any depth is safe to ask about. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return max < 0;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > max) return true;
    for (const child of Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Turns zod issues into one readable sentence: "field: problem; ...". */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`)
    .join('; ');
}
