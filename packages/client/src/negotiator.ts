// The one place that owns SDP negotiation for a peer connection: media
// streams (up and down) and file transfers all go through it. Every step
// that touches the connection's descriptions or remote candidates runs on
// one queue, so offers, answers and candidates are applied strictly in
// order and never overlap.
//
// - The offerer (up-streams, the receiver of a file) offers whenever the
//   browser fires `negotiationneeded`; one offer is out at a time, and a
//   need that arises meanwhile is met by a new offer once the answer is in.
//   While the signalling channel is down the need is kept, and `resume()`
//   offers when it is back.
// - The answerer (down-streams, the sender of a file) answers each offer.
// - Remote candidates wait until a remote description is set; local ones
//   wait until our first description has been sent, so the other side
//   never gets a candidate for a session it does not know yet.

export type NegotiationRole = 'offerer' | 'answerer';

/** How a negotiator talks to the other side. */
export interface Signaling {
  /** Whether messages can be sent now. */
  canSend(): boolean;
  /** Sends our offer or answer; may throw if the channel just went down. */
  sendDescription(type: 'offer' | 'answer', sdp: string): void;
  sendCandidate(candidate: RTCIceCandidateInit): void;
}

export interface NegotiatorHooks {
  /** Creating or applying a description failed; the owner decides what to do. */
  onerror(e: unknown): void;
  /** A round of negotiation is complete (offerer: answer applied; answerer: answer sent). */
  onnegotiated(): void;
}

export class Negotiator {
  /** Our first description went out: from then on candidates are sent as they come. */
  localDescriptionSent = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly heldLocal: RTCIceCandidateInit[] = [];
  private heldRemote: RTCIceCandidateInit[] = [];
  /** The offerer must (re)offer. */
  private needed = false;
  /** An offer is out and its answer has not been applied. */
  private offering = false;
  private wantIceRestart = false;
  private closed = false;
  private readonly onIceCandidate = (e: RTCPeerConnectionIceEvent) => {
    if (e.candidate) this.localCandidate(e.candidate.toJSON());
  };
  private readonly onNegotiationNeeded = () => {
    this.needed = true;
    this.pump();
  };

  constructor(
    readonly pc: RTCPeerConnection,
    readonly role: NegotiationRole,
    private readonly signaling: Signaling,
    private readonly hooks: NegotiatorHooks,
  ) {
    // Listeners rather than on* properties: the application may set those.
    pc.addEventListener('icecandidate', this.onIceCandidate);
    if (role === 'offerer') pc.addEventListener('negotiationneeded', this.onNegotiationNeeded);
  }

  /** Whether an offer is out without an answer yet. */
  get awaitingAnswer(): boolean {
    return this.offering;
  }

  /** The offerer's answer from the other side. */
  remoteAnswer(sdp: string): Promise<void> {
    return this.enqueue(async () => {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.offering = false;
      await this.flushRemote();
      this.hooks.onnegotiated();
      this.pump();
    });
  }

  /** The answerer's offer from the other side: answers it. */
  remoteOffer(sdp: string): Promise<void> {
    return this.enqueue(async () => {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      await this.flushRemote();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      const local = this.pc.localDescription?.sdp ?? answer.sdp ?? '';
      if (this.closed) return;
      this.signaling.sendDescription('answer', local);
      this.descriptionSent();
      this.hooks.onnegotiated();
    });
  }

  /** A trickled candidate from the other side. */
  remoteCandidate(candidate: RTCIceCandidateInit): void {
    void this.enqueue(async () => {
      if (!this.pc.remoteDescription) {
        this.heldRemote.push(candidate);
        return;
      }
      await this.addCandidate(candidate);
    }).catch(() => {});
  }

  /** Offerer: negotiate again with new ICE credentials. */
  restartIce(): void {
    if (this.role !== 'offerer' || this.closed) return;
    this.wantIceRestart = true;
    this.needed = true;
    // restartIce() fires negotiationneeded where supported; pump() covers the rest.
    try {
      this.pc.restartIce();
    } catch {
      /* older browsers: the iceRestart offer option does it */
    }
    this.pump();
  }

  /** The signalling channel is usable again: send what waited for it. */
  resume(): void {
    if (this.closed) return;
    if (this.localDescriptionSent) this.flushLocal();
    this.pump();
  }

  /** Stops negotiating; the owner closes the peer connection. */
  close(): void {
    this.closed = true;
    this.pc.removeEventListener('icecandidate', this.onIceCandidate);
    this.pc.removeEventListener('negotiationneeded', this.onNegotiationNeeded);
  }

  // -------------------------------------------------------------------

  private pump(): void {
    if (this.closed || this.role !== 'offerer' || this.offering || !this.needed) return;
    if (!this.signaling.canSend()) return;
    this.needed = false;
    this.offering = true;
    const iceRestart = this.wantIceRestart;
    this.wantIceRestart = false;
    this.enqueue(async () => {
      const offer = await this.pc.createOffer(iceRestart ? { iceRestart: true } : {});
      await this.pc.setLocalDescription(offer);
      if (this.closed) return;
      this.signaling.sendDescription('offer', this.pc.localDescription?.sdp ?? offer.sdp ?? '');
      this.descriptionSent();
    }).catch((e) => {
      // Nothing went out: try again when asked (resume, negotiationneeded).
      this.offering = false;
      this.needed = true;
      if (iceRestart) this.wantIceRestart = true;
      if (!this.closed && this.signaling.canSend()) this.hooks.onerror(e);
    });
  }

  private descriptionSent(): void {
    this.localDescriptionSent = true;
    this.flushLocal();
  }

  private localCandidate(candidate: RTCIceCandidateInit): void {
    if (this.closed) return;
    if (!this.localDescriptionSent || !this.signaling.canSend()) {
      this.heldLocal.push(candidate);
      return;
    }
    try {
      this.signaling.sendCandidate(candidate);
    } catch {
      this.heldLocal.push(candidate);
    }
  }

  private flushLocal(): void {
    while (this.heldLocal.length > 0 && this.signaling.canSend()) {
      const c = this.heldLocal.shift()!;
      try {
        this.signaling.sendCandidate(c);
      } catch {
        this.heldLocal.unshift(c);
        return;
      }
    }
  }

  private async flushRemote(): Promise<void> {
    const held = this.heldRemote;
    this.heldRemote = [];
    for (const c of held) await this.addCandidate(c);
  }

  private async addCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (e) {
      // A candidate of an older ICE generation, or one the browser cannot use: not fatal.
      if (!this.closed) console.warn('atrium: ignored a remote ICE candidate:', e);
    }
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => (this.closed ? undefined : op()));
    this.queue = run.catch(() => {});
    return run;
  }
}

/** The candidate fields the wire schema knows, without nulls the browser leaves in. */
export function candidateForWire(c: RTCIceCandidateInit): { candidate: string; sdpMid?: string; sdpMLineIndex?: number; usernameFragment?: string } {
  const out: { candidate: string; sdpMid?: string; sdpMLineIndex?: number; usernameFragment?: string } = { candidate: c.candidate ?? '' };
  if (c.sdpMid != null) out.sdpMid = c.sdpMid;
  if (c.sdpMLineIndex != null) out.sdpMLineIndex = c.sdpMLineIndex;
  if (c.usernameFragment != null) out.usernameFragment = c.usernameFragment;
  return out;
}
