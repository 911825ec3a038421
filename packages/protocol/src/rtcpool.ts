// Wire schemas of RTCPool's signalling protocol "ssp v2" (npm rtcpool 3.x):
// events with a type and a JSON object as data, sent as `{type, data}` text
// frames on a WebSocket or as socket.io events named `type`. One zod schema
// per event type; the server validates what clients send, the SDK and the
// tests validate what the server sends.
import { z } from 'zod';
import { type ErrorCode, LIMITS, describeIssues, iceCandidate, nestsDeeperThan } from './galene.ts';
import { wellFormedString } from './text.ts';

export { LIMITS, type ErrorCode };

const id = wellFormedString(LIMITS.idChars).min(1);

/**
 * A description: a JSON object the back end attaches to an endpoint (never
 * the endpoint itself), or null when there is none.
 */
export const description = z
  .record(z.string(), z.unknown())
  .refine((v) => JSON.stringify(v).length <= LIMITS.dataBytes, { message: `must be at most ${LIMITS.dataBytes} bytes as JSON` })
  .nullable();
export type Description = z.infer<typeof description>;

/** An RTCSessionDescription as JSON. */
export const sessionDescription = z.object({
  type: z.enum(['offer', 'answer', 'pranswer', 'rollback']),
  sdp: z.string().max(LIMITS.sdpChars).optional(),
});
export type SessionDescription = z.infer<typeof sessionDescription>;

// ---------------------------------------------------------------------------
// Events a client sends.

export const join = z.object({ pool: wellFormedString(LIMITS.groupNameChars).min(1) });
export const sdp = z.object({ to: id, description: sessionDescription });
/** `candidate` is null at the end of candidates; `from` is ignored (the server knows who sent it). */
export const candidate = z.object({ for: id, from: wellFormedString(LIMITS.idChars).nullish(), candidate: iceCandidate.nullable() });

export const clientEventSchemas = {
  'rtc:join': join,
  'rtc:sdp': sdp,
  'rtc:candidate': candidate,
} as const;
export type ClientEventType = keyof typeof clientEventSchemas;
export type ClientEvent = { [K in ClientEventType]: { type: K; data: z.infer<(typeof clientEventSchemas)[K]> } }[ClientEventType];

// ---------------------------------------------------------------------------
// Events the server sends. Where an endpoint id is sent as `id`, it is also
// sent as `uid` (rtcpool 3.0.0 reads `uid`, later versions `id`).

export const serverEventSchemas = {
  'rtc:joined': z.object({
    client_id: z.string(),
    peers: z.array(z.string()),
    descriptions: z.record(z.string(), description),
    pool: z.string(),
  }),
  'rtc:peer': z.object({ id: z.string(), uid: z.string() }),
  'rtc:sdp': z.object({ peer: z.string(), description: sessionDescription }),
  'rtc:candidate': z.object({ from: z.string(), candidate: iceCandidate.nullable() }),
  'rtc:close': z.object({ id: z.string(), uid: z.string() }),
  'rtc:stop': z.object({}),
  'rtc:describe': z.object({ id: z.string(), uid: z.string(), description }),
  'rtc:error': z.object({ message: z.string(), reason: z.string() }),
} as const;
export type ServerEventType = keyof typeof serverEventSchemas;
export type ServerEventData<K extends ServerEventType> = z.infer<(typeof serverEventSchemas)[K]>;

// ---------------------------------------------------------------------------

export type ParseResult = { ok: true; event: ClientEvent } | { ok: false; error: ErrorCode; message: string };

/** Validates one event (its type and data) from a client; never throws. */
export function parseClientEvent(type: unknown, data: unknown): ParseResult {
  if (typeof type !== 'string' || type === '') {
    return { ok: false, error: 'bad-message', message: 'an event needs a string "type" such as "rtc:join"' };
  }
  if (!Object.hasOwn(clientEventSchemas, type)) {
    const known = Object.keys(clientEventSchemas).join(', ');
    return { ok: false, error: 'unknown-type', message: `unknown event type "${type.slice(0, 64)}"; a client sends ${known}` };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, error: 'bad-message', message: `the data of "${type}" must be a JSON object` };
  }
  if (nestsDeeperThan(data, LIMITS.nestingDepth - 1)) {
    return { ok: false, error: 'too-large', message: `an event may nest arrays and objects at most ${LIMITS.nestingDepth} levels deep` };
  }
  const r = clientEventSchemas[type as ClientEventType].safeParse(data);
  if (!r.success) return { ok: false, error: 'bad-message', message: `bad "${type}" event: ${describeIssues(r.error)}` };
  return { ok: true, event: { type, data: r.data } as ClientEvent };
}

/** Validates a raw WebSocket frame's decoded JSON: `{type, data}`. */
export function parseClientFrame(frame: unknown): ParseResult {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return { ok: false, error: 'bad-message', message: 'a frame must be a JSON object {"type": ..., "data": {...}}' };
  }
  const f = frame as { type?: unknown; data?: unknown };
  return parseClientEvent(f.type, f.data);
}
