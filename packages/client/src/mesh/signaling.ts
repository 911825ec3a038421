// What a Pool needs from a signalling protocol: join a pool or room, learn
// who is there and who comes and goes, and carry descriptions and candidates
// to one peer. Camus rooms and RTCPool pools (over a WebSocket or socket.io)
// implement it; so can any other channel, by extending `Signaling`. The
// negotiation itself is the same for all (negotiator.ts).
import type { Description } from '@atrium/protocol/rtcpool';
import { type Listener, TypedEmitter } from '../emitter.ts';
import type { MeshError } from './errors.ts';

export type { Description };

/** A peer as the signalling channel reports it. */
export interface PeerInfo {
  id: string;
  /** Whether we yield to this peer when offers collide (the peer is told the opposite). */
  polite: boolean;
  /** What the back end says about the peer (RTCPool), or its name (Camus `{username}`); null if nothing. */
  description: Description;
}

export interface JoinedInfo {
  /** Our own id in the pool. */
  id: string;
  /** The pool or room name as the server has it. */
  pool: string;
  /** The peers present when we joined. */
  peers: PeerInfo[];
  /** ICE servers the server handed out, if the protocol does that. */
  iceServers?: RTCIceServer[];
}

/** Events every signalling channel emits. */
export interface SignalingEvents {
  /** The join succeeded; emitted before `join()` resolves and before any event about the pool. */
  joined: [info: JoinedInfo];
  /** A peer came (or, in Camus, first spoke to us). */
  peer: [info: PeerInfo];
  /** A peer left the pool. */
  gone: [id: string];
  /** A peer's description changed. */
  describe: [id: string, description: Description];
  /** An offer or answer from a peer. */
  description: [from: string, description: RTCSessionDescriptionInit];
  /** A trickled candidate from a peer; null at the end of candidates. */
  candidate: [from: string, candidate: RTCIceCandidateInit | null];
  /** A peer closed its connection to us but may still be in the room (Camus `bye`). */
  bye: [from: string];
  /** The server reported an error, or sent something unreadable. */
  error: [error: MeshError];
  /** The channel is gone (left, stopped by the server, socket closed); nothing more comes. */
  end: [reason: string];
}

export type SignalingProtocol = 'camus' | 'rtcpool';

/** What a Pool uses of a signalling channel, whatever else the channel offers. */
export interface SignalingChannel {
  readonly protocol: SignalingProtocol;
  readonly id: string | null;
  join(name: string): Promise<JoinedInfo>;
  sendDescription(to: string, description: RTCSessionDescriptionInit): void;
  sendCandidate(to: string, candidate: RTCIceCandidateInit | null): void;
  closePeer(to: string): void;
  leave(): void;
  on<K extends keyof SignalingEvents>(event: K, listener: Listener<SignalingEvents[K]>): () => void;
}

/**
 * A signalling channel. Subclasses implement the abstract methods and emit
 * `SignalingEvents` (plus any events of their own, `Extra`).
 */
export abstract class Signaling<Extra extends { [K in keyof Extra]: unknown[] } = Record<never, never>> extends TypedEmitter<SignalingEvents & Extra> {
  abstract readonly protocol: SignalingProtocol;
  /** Our id once joined. */
  abstract readonly id: string | null;

  /** Connects if needed and joins; resolves once `joined` was emitted, rejects with a MeshError. */
  abstract join(name: string): Promise<JoinedInfo>;
  abstract sendDescription(to: string, description: RTCSessionDescriptionInit): void;
  abstract sendCandidate(to: string, candidate: RTCIceCandidateInit | null): void;
  /** We closed our connection to this peer (Camus says `bye`; RTCPool has no word for it). */
  abstract closePeer(to: string): void;
  /** Leaves the pool and closes the channel; `end` follows. */
  abstract leave(): void;
}
