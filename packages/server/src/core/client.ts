// The seam between the core and everything that takes part in a group.
// A Client is anything that can be a member: a WebSocket connection of any
// dialect, a WHIP publisher, a recorder. The core hands it events; how they
// reach the wire is the client's business.
import type { UpStream } from '../media/engine.ts';
import type { Permission } from './vocabulary.ts';

export type { Permission };

export type UserData = Record<string, unknown>;

/**
 * What the back end says about a member (token claims, the admin API): a
 * JSON object the member cannot set itself, or null when there is none.
 */
export type Description = Record<string, unknown> | null;

/** Group facts a member may see (the dialect adds URLs). */
export interface GroupInfo {
  name: string;
  displayName?: string;
  description?: string;
  authServer?: string;
  authPortal?: string;
  locked: boolean;
  lockMessage?: string;
  clientCount: number;
  data: UserData;
  /** Members may change their own password through the admin API (Galène's `canChangePassword`). */
  canChangePassword?: boolean;
}

export interface IceServerInfo {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** This member joined, or its own view of the group changed, or it left. */
export interface JoinedEvent {
  type: 'joined';
  kind: 'join' | 'change' | 'leave';
  group: string;
  username: string | undefined;
  permissions: Permission[];
  info: GroupInfo;
  iceServers: IceServerInfo[];
}

/** Another member (or this one) arrived, changed or went. */
export interface UserEvent {
  type: 'user';
  kind: 'add' | 'change' | 'delete';
  id: string;
  username: string | undefined;
  permissions: Permission[];
  data: UserData;
  /** Set by the server only; null when none (and on 'delete'). */
  description: Description;
  /** On 'delete': the member did not leave by itself but was kicked or banned by an operator. */
  reason?: 'kicked' | 'banned';
}

export type ChatKind = '' | 'me' | 'caption';

export interface ChatEvent {
  type: 'chat';
  /** Public messages have one (an operator deletes a message by it); private ones do not. */
  id?: string | undefined;
  /** True when replayed from history on join. */
  history: boolean;
  kind: ChatKind;
  source: string | undefined;
  username: string | undefined;
  dest: string | undefined;
  privileged: boolean;
  time: Date;
  value: string;
}

/** A message that is not chat: from the server (error, info, kicked…) or relayed between members. */
export interface MessageEvent {
  type: 'message';
  kind: string;
  source: string | undefined;
  username: string | undefined;
  dest: string | undefined;
  privileged: boolean;
  /** Stable error identifier, for kind 'error'. */
  error?: string;
  /** On kind 'kicked': the member was banned as well. */
  banned?: boolean;
  value: unknown;
}

export interface IceCandidateInfo {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** Negotiation of one media stream with this member (the publisher of an up-stream, or the subscriber of a down-stream). */
export type StreamEvent =
  | { type: 'stream'; kind: 'offer'; id: string; label: string; source: string; username: string | undefined; sdp: string }
  | { type: 'stream'; kind: 'answer'; id: string; sdp: string }
  | { type: 'stream'; kind: 'ice'; id: string; candidate: IceCandidateInfo }
  /** A down-stream to this member ended. */
  | { type: 'stream'; kind: 'close'; id: string }
  /** The member is asked to close one of its up-streams. */
  | { type: 'stream'; kind: 'abort'; id: string }
  /** The member is asked to restart ICE on one of its up-streams and offer again (the server moved its side; see UpStreamEvents.renegotiate). */
  | { type: 'stream'; kind: 'renegotiate'; id: string };

export type CoreEvent = JoinedEvent | UserEvent | ChatEvent | MessageEvent | StreamEvent;

/** A stream published in the group, as a client that takes media at track level sees it. */
export interface PublishedStream {
  /** Unique in the group: the owner's id and the stream id. */
  key: string;
  /** The stream id as its publisher and subscribers know it. */
  id: string;
  label: string;
  owner: { id: string; username: string | undefined };
  /** The engine's up-stream: attach taps to its tracks (UpTrack.attach). */
  up: UpStream;
  /** The stream this one replaced (the publisher's `replace`), if any. */
  replaces: string | undefined;
}

/**
 * What a server-made client that handles media itself (the recorder)
 * implements besides `deliver`: it is told of every publication of its
 * group, those already there when it joins included.
 */
export interface TrackConsumer {
  /** A stream is published, or its tracks changed (called again after each renegotiation). */
  published(p: PublishedStream): void;
  /** The publication ended (closed, replaced, its owner left or lost `present`). */
  unpublished(p: PublishedStream): void;
}

export interface Client {
  /** Unique among all clients of the server. */
  readonly id: string;
  /** What kind of client this is, for metrics only ('galene', 'camus', 'whip', …). */
  readonly kind: string;
  /** Where the client connects from ("address:port"), for an operator's `identify`; none for server-made clients. */
  readonly address?: string | undefined;
  /** Hands the client an event; must not throw and must not block. */
  deliver(event: CoreEvent): void;
  /**
   * Ends the client's session: after a kick (or the group's deletion), or
   * because the server is stopping, which clients should not take for a kick.
   */
  terminate(reason: string, why?: 'kicked' | 'shutdown'): void;
  /** Present on clients that take the group's media at track level (see TrackConsumer). */
  readonly tracks?: TrackConsumer | undefined;
  /**
   * Bytes queued for this client and not yet written to the network. The
   * chat history is replayed to a joiner in pages, each once this has
   * dropped; a client without it gets one page per turn of the event loop.
   */
  outputBacklog?(): number;
}
