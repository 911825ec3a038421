// Wire schemas of the Colibri-style bridge channel (Jitsi's "bridge
// channel" over a WebSocket): JSON text frames, each an object whose
// `colibriClass` names it. A client opens the channel at the URL the focus
// gave in its Jingle offer (<web-socket xmlns="http://jitsi.org/protocol/colibri"/>)
// and uses it for endpoint messages to the others in the conference and to
// say which videos it wants at which height; the server tells it who the
// dominant speaker is. The server validates what clients send; the tests
// validate what the server sends.
import { z } from 'zod';
import { describeIssues, nestsDeeperThan } from './galene.ts';
import { wellFormedString } from './text.ts';

export const COLIBRI_LIMITS = {
  /** Largest frame accepted, in bytes. */
  frameBytes: 64 * 1024,
  /** Longest endpoint id or source name. */
  nameChars: 256,
  /** Most sources named in one ReceiverVideoConstraints. */
  sources: 512,
  /** Deepest nesting of an endpoint message's payload. */
  payloadDepth: 16,
};

const name = wellFormedString(COLIBRI_LIMITS.nameChars);
const names = z.array(name).max(COLIBRI_LIMITS.sources);

/** How much of one video a receiver wants: its height in pixels (0: none; -1 or absent: no limit). */
export const videoConstraints = z.object({
  maxHeight: z.number().int().min(-1).max(100_000).optional(),
  /** Older clients' word for maxHeight. */
  idealHeight: z.number().int().min(-1).max(100_000).optional(),
  maxFrameRate: z.number().min(0).max(1000).optional(),
});
export type VideoConstraints = z.infer<typeof videoConstraints>;

// ---------------------------------------------------------------------------
// What a client sends.

export const clientMessageSchemas = {
  ClientHello: z.object({}),
  /** To one endpoint (`to`: its id, the occupant's nick) or, with `to` empty or absent, to everyone else. */
  EndpointMessage: z.object({
    to: name.nullish(),
    msgPayload: z.unknown().refine((v) => !nestsDeeperThan(v, COLIBRI_LIMITS.payloadDepth), { message: `nests deeper than ${COLIBRI_LIMITS.payloadDepth} levels` }),
  }),
  ReceiverVideoConstraints: z.object({
    /** Videos at most (-1: all). */
    lastN: z.number().int().min(-1).max(10_000).optional(),
    selectedSources: names.optional(),
    onStageSources: names.optional(),
    selectedEndpoints: names.optional(),
    onStageEndpoints: names.optional(),
    defaultConstraints: videoConstraints.optional(),
    constraints: z
      .record(name, videoConstraints)
      .refine((r) => Object.keys(r).length <= COLIBRI_LIMITS.sources, { message: `names more than ${COLIBRI_LIMITS.sources} sources` })
      .optional(),
  }),
  LastNChangedEvent: z.object({ lastN: z.number().int().min(-1).max(10_000) }),
  // Accepted and not acted on: statistics, a source's video type, audio subscriptions.
  EndpointStats: z.object({}),
  SourceVideoTypeMessage: z.object({}),
  ReceiverAudioSubscription: z.object({}),
} as const;
export type ClientMessageClass = keyof typeof clientMessageSchemas;
export type ReceiverVideoConstraints = z.infer<typeof clientMessageSchemas.ReceiverVideoConstraints>;
export type ClientMessage = { [K in ClientMessageClass]: { colibriClass: K } & z.infer<(typeof clientMessageSchemas)[K]> }[ClientMessageClass];

export type ParsedClientMessage = { ok: true; message: ClientMessage } | { ok: true; message: undefined; colibriClass: string } | { ok: false; message: string };

/**
 * Validates one decoded frame. A `colibriClass` this server does not know is
 * not an error (as with Jitsi's bridge, newer clients send more): `message`
 * is then undefined.
 */
export function parseClientMessage(value: unknown): ParsedClientMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, message: 'a bridge-channel message is a JSON object with a "colibriClass"' };
  const cls = (value as { colibriClass?: unknown }).colibriClass;
  if (typeof cls !== 'string' || cls === '') return { ok: false, message: 'the message has no "colibriClass" (a string naming what it is)' };
  if (!Object.hasOwn(clientMessageSchemas, cls)) return { ok: true, message: undefined, colibriClass: cls.slice(0, 64) };
  const r = clientMessageSchemas[cls as ClientMessageClass].safeParse(value);
  if (!r.success) return { ok: false, message: `bad ${cls}: ${describeIssues(r.error)}` };
  return { ok: true, message: { ...r.data, colibriClass: cls } as ClientMessage };
}

// ---------------------------------------------------------------------------
// What the server sends.

export const serverMessageSchemas = {
  ServerHello: z.object({ colibriClass: z.literal('ServerHello'), version: z.string() }),
  EndpointMessage: z.object({ colibriClass: z.literal('EndpointMessage'), from: z.string(), to: z.string(), msgPayload: z.unknown() }),
  DominantSpeakerEndpointChangeEvent: z.object({
    colibriClass: z.literal('DominantSpeakerEndpointChangeEvent'),
    dominantSpeakerEndpoint: z.string(),
    previousSpeakers: z.array(z.string()),
  }),
  /** The video sources this receiver is sent now (after its constraints). */
  ForwardedSources: z.object({ colibriClass: z.literal('ForwardedSources'), forwardedSources: z.array(z.string()) }),
  /** Atrium's own: a message that was refused, and why (Jitsi's bridge has no error message; clients ignore unknown classes). */
  Error: z.object({ colibriClass: z.literal('Error'), error: z.string(), message: z.string() }),
} as const;
export type ServerMessageClass = keyof typeof serverMessageSchemas;
export type ServerMessage = z.infer<(typeof serverMessageSchemas)[ServerMessageClass]>;
