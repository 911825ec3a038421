// The one negotiation core of the mesh SDK: "perfect negotiation" (W3C
// WebRTC §10.7) for one RTCPeerConnection between two equal peers, used by
// every signalling protocol (Camus rooms, RTCPool pools). Either side offers
// when the browser says negotiation is needed; when two offers cross, the
// impolite peer ignores the other's offer and the polite one rolls its own
// back and answers. Remote descriptions and candidates are applied one at a
// time, in order; candidates that arrive before a remote description wait
// for it; local candidates wait until our first description has gone out;
// ICE is restarted when it fails.

/** How a negotiator reaches the other peer (through the signalling server). */
export interface NegotiationSignals {
  sendDescription(description: RTCSessionDescriptionInit): void;
  /** A local candidate; null at the end of candidates. */
  sendCandidate(candidate: RTCIceCandidateInit | null): void;
}

export interface NegotiatorHooks {
  /** Something failed that the negotiator could not absorb; the connection goes on. */
  error(error: unknown): void;
  /** The connection reached `stable` after a round of offer and answer. */
  negotiated(): void;
}

/** Counters for diagnostics and tests: how negotiation went so far. */
export interface NegotiationStats {
  offersSent: number;
  answersSent: number;
  answersApplied: number;
  /** Offers that arrived while we were offering ourselves. */
  collisions: number;
  /** Colliding offers we ignored (impolite side). */
  ignoredOffers: number;
  /** Our offers we rolled back for the other's (polite side). */
  rollbacks: number;
  iceRestarts: number;
  /** Remote candidates that could not be applied (stale, or of an ignored offer). */
  candidatesDropped: number;
}

/** How long the polite side of a new connection waits for the other's first offer. */
const FIRST_OFFER_WAIT_MS = 400;

export class PerfectNegotiator {
  /** We are between starting and sending an offer (perfect negotiation's `makingOffer`). */
  private makingOffer = false;
  /** The last remote offer was ignored, so its candidates may fail (perfect negotiation's `ignoreOffer`). */
  private ignoreOffer = false;
  /** Our offer being set (while `makingOffer`), so a polite rollback can wait for it. */
  private offering: Promise<void> = Promise.resolve();
  /** A remote answer is being applied: an offer arriving meanwhile does not collide. */
  private isSettingRemoteAnswerPending = false;
  /** Remote candidates waiting for a remote description. */
  private pendingRemote: RTCIceCandidateInit[] = [];
  /** Local candidates waiting for our first description to go out. */
  private pendingLocal: (RTCIceCandidateInit | null)[] | undefined = [];
  /** Incoming signalling, applied strictly in order. */
  private incoming: Promise<void> = Promise.resolve();
  private closed = false;
  readonly stats: NegotiationStats = {
    offersSent: 0,
    answersSent: 0,
    answersApplied: 0,
    collisions: 0,
    ignoredOffers: 0,
    rollbacks: 0,
    iceRestarts: 0,
    candidatesDropped: 0,
  };

  private readonly onNegotiationNeeded = (): void => {
    // On a brand-new connection the polite side lets the impolite side's
    // first offer come: when both offered the very first description at the
    // same instant, Chromium sometimes left the polite side's ICE at "new"
    // after the rollback. If no offer comes, the polite side offers itself.
    if (this.polite && !this.pc.remoteDescription && !this.firstOfferWaited) {
      this.firstOfferWaited = true;
      setTimeout(() => {
        if (!this.closed && !this.pc.remoteDescription && this.pc.signalingState === 'stable') void this.offer();
      }, FIRST_OFFER_WAIT_MS);
      return;
    }
    void this.offer();
  };

  /** The polite side waited once for the other's first offer. */
  private firstOfferWaited = false;

  private readonly onIceCandidate = (e: RTCPeerConnectionIceEvent): void => {
    if (this.closed) return;
    const candidate = e.candidate ? e.candidate.toJSON() : null;
    if (this.pendingLocal) this.pendingLocal.push(candidate);
    else this.signals.sendCandidate(candidate);
  };

  private readonly onIceConnectionStateChange = (): void => {
    if (this.closed || this.pc.iceConnectionState !== 'failed') return;
    this.restartIce();
  };

  constructor(
    readonly pc: RTCPeerConnection,
    /** The polite peer yields when offers collide. */
    readonly polite: boolean,
    private readonly signals: NegotiationSignals,
    private readonly hooks: NegotiatorHooks,
  ) {
    // Listeners rather than on* properties, which stay the application's.
    pc.addEventListener('negotiationneeded', this.onNegotiationNeeded);
    pc.addEventListener('icecandidate', this.onIceCandidate);
    pc.addEventListener('iceconnectionstatechange', this.onIceConnectionStateChange);
  }

  /** An offer or an answer from the other peer. */
  receiveDescription(description: RTCSessionDescriptionInit): Promise<void> {
    return this.serially(() => this.applyDescription(description));
  }

  /** A candidate from the other peer; null (end of candidates) needs nothing from us. */
  receiveCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    if (candidate === null || !candidate.candidate) return Promise.resolve();
    return this.serially(async () => {
      if (!this.pc.remoteDescription) {
        this.pendingRemote.push(candidate);
        return;
      }
      await this.addCandidate(candidate);
    });
  }

  /** Negotiates again with new ICE credentials (also done by itself when ICE fails). */
  restartIce(): void {
    if (this.closed) return;
    this.stats.iceRestarts++;
    // Fires negotiationneeded: the next offer carries new credentials.
    this.pc.restartIce();
  }

  /** Stops negotiating and leaves the connection alone (its owner closes it). */
  close(): void {
    this.closed = true;
    this.pendingRemote = [];
    this.pendingLocal = undefined;
    this.pc.removeEventListener('negotiationneeded', this.onNegotiationNeeded);
    this.pc.removeEventListener('icecandidate', this.onIceCandidate);
    this.pc.removeEventListener('iceconnectionstatechange', this.onIceConnectionStateChange);
  }

  // -------------------------------------------------------------------

  private async offer(): Promise<void> {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      // Without an argument the browser creates the right description for
      // the state it is in when the operation runs (W3C §4.4.1.5).
      const setting = this.pc.setLocalDescription();
      this.offering = setting.then(
        () => {},
        () => {},
      );
      await setting;
      const local = this.pc.localDescription;
      if (this.closed || !local) return;
      this.send(local.toJSON() as RTCSessionDescriptionInit);
      if (local.type === 'offer') this.stats.offersSent++;
    } catch (e) {
      if (!this.closed) this.hooks.error(e);
    } finally {
      this.makingOffer = false;
    }
  }

  private async applyDescription(description: RTCSessionDescriptionInit): Promise<void> {
    const pc = this.pc;
    const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.isSettingRemoteAnswerPending);
    const offerCollision = description.type === 'offer' && !readyForOffer;
    if (offerCollision) this.stats.collisions++;
    this.ignoreOffer = !this.polite && offerCollision;
    if (this.ignoreOffer) {
      this.stats.ignoredOffers++;
      return;
    }
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') {
      // An answer to an offer we rolled back (or to one answered already): nothing to apply it to.
      return;
    }
    this.isSettingRemoteAnswerPending = description.type === 'answer';
    try {
      if (offerCollision) {
        // Polite: our offer yields. If it is still being set, let that
        // finish, then roll it back explicitly (rather than leaving it to the
        // browser's implicit rollback). Rollback and the remote offer are
        // queued on the connection's chain at once: nothing comes between.
        if (this.makingOffer) await this.offering;
        this.stats.rollbacks++;
        if (pc.signalingState === 'have-local-offer') {
          await Promise.all([pc.setLocalDescription({ type: 'rollback' }), pc.setRemoteDescription(description)]);
        } else {
          await pc.setRemoteDescription(description);
        }
      } else {
        await pc.setRemoteDescription(description);
      }
    } finally {
      this.isSettingRemoteAnswerPending = false;
    }
    await this.flushRemote();
    if (description.type === 'offer') {
      await pc.setLocalDescription();
      const local = pc.localDescription;
      if (this.closed || !local) return;
      this.send(local.toJSON() as RTCSessionDescriptionInit);
      this.stats.answersSent++;
    } else {
      this.stats.answersApplied++;
    }
    if (pc.signalingState === 'stable') this.hooks.negotiated();
  }

  private send(description: RTCSessionDescriptionInit): void {
    this.signals.sendDescription(description);
    const held = this.pendingLocal;
    this.pendingLocal = undefined;
    for (const c of held ?? []) this.signals.sendCandidate(c);
  }

  private async flushRemote(): Promise<void> {
    const held = this.pendingRemote;
    this.pendingRemote = [];
    for (const c of held) await this.addCandidate(c);
  }

  private async addCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (e) {
      // Candidates of an offer we ignored, or of an ICE generation that was
      // restarted since, are expected to fail.
      this.stats.candidatesDropped++;
      if (!this.ignoreOffer && !this.closed && this.pc.signalingState !== 'closed') {
        this.hooks.error(e);
      }
    }
  }

  private serially(step: () => Promise<void>): Promise<void> {
    const run = this.incoming.then(async () => {
      if (this.closed) return;
      try {
        await step();
      } catch (e) {
        if (!this.closed) this.hooks.error(e);
      }
    });
    this.incoming = run;
    return run;
  }
}
