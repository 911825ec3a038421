// The core's own words: the permissions it checks, the codes it refuses
// with, the limits it keeps, the stream labels it knows and what a
// subscriber may ask of a stream. Every dialect maps its wire names to these
// (dialects/<name>/vocabulary.ts); nothing in core/ knows a wire format.
import type { DownRequest } from '../media/engine.ts';

/** Every permission a member may hold; the core checks each of them (Group, GroupStreams). */
export const PERMISSIONS = ['op', 'present', 'message', 'caption', 'token', 'record', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(name: unknown): name is Permission {
  return typeof name === 'string' && (PERMISSIONS as readonly string[]).includes(name);
}

/**
 * Why something was refused: a stable code for programs (a sentence for
 * people travels beside it). The core raises the rule codes (not-permitted,
 * group-locked…); the dialect kit and the dialects raise the ones about
 * frames (bad-json, too-large, rate-limited…).
 */
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
  'no-such-user',
  'no-such-token',
  'not-supported',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Bounds the core keeps whatever the dialect (wire schemas may be stricter, never looser). */
export const LIMITS = {
  /** Largest user or group `data` object, serialized as JSON, in bytes. */
  dataBytes: 16 * 1024,
  /** Longest chat message, in characters. */
  chatChars: 32 * 1024,
  /** Longest group name, in characters. */
  groupNameChars: 256,
  /** Longest username, in characters. */
  usernameChars: 256,
} as const;

/** What a publisher's stream is: the web app and the layer choice treat each differently. */
export const STREAM_LABELS = ['camera', 'screenshare', 'video'] as const;
export type StreamLabel = (typeof STREAM_LABELS)[number];

export function isStreamLabel(label: string): label is StreamLabel {
  return (STREAM_LABELS as readonly string[]).includes(label);
}

/**
 * What a subscriber asks of one stream: its audio or not, and its video at
 * the best layer its bandwidth allows ('high'), the lowest ('low'), or none.
 */
export type LayerRequest = DownRequest;

/** What a member asks to receive, per stream label; '' is for labels not named. */
export type MediaRequest = Record<string, LayerRequest>;
