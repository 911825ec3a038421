// A session carried by an RTCPeerConnection between two windows, signalled
// over the relay. Host candidates only (`iceServers: []`): the windows share
// a machine.
//
// Either side may add or remove streams at any time, yet offers never cross:
// one side (the window whose name sorts last) makes every offer, and the
// other, when it has tracks to add or remove, sends `need` with how many new
// m-lines of each kind it wants; the offerer adds receive-only transceivers
// for them and offers, and the other side's new tracks take those m-lines
// when it answers. With no glare there is no rollback — which matters,
// because Chromium leaves a receiver's track muted for good after its
// transceiver went through a rolled-back local offer, the usual way "perfect
// negotiation" resolves crossing offers.
//
// Before any SDP, the initiator says `hello` (repeated until answered, since
// the peer's page may still be loading) and the peer answers `welcome`; both
// carry the sender's instance id, and every later message names the instance
// it is for (`to`), so messages of a reloaded window's earlier life are
// ignored.
import { describe, WindowRelayError } from './errors.ts';
import { cloneStream, type CloseReason, deferred, type Session, type SessionHost, stopTracks } from './session.ts';

/** How often the initiator repeats `hello` until the peer answers. */
export const HELLO_INTERVAL_MS = 250;

interface Outgoing {
  clone: MediaStream;
  senders: RTCRtpSender[];
}

interface Incoming {
  stream: MediaStream;
  tracks: Set<MediaStreamTrack>;
}

export class RtcSession implements Session {
  readonly via = 'webrtc' as const;
  readonly pc: RTCPeerConnection;
  /** This side makes the offers (the other asks with `need`). */
  readonly offerer: boolean;
  remoteInst: string | undefined;
  sending = false;
  private state: 'hello' | 'open' | 'closed';
  private readonly opened = deferred();
  private readonly outgoing = new Map<MediaStream, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();
  /** Offerer: an offer is out, its answer not yet applied. */
  private offering = false;
  /** Offerer: another offer is needed once the current one is answered. */
  private offerWanted = false;
  private helloTimer: ReturnType<typeof setInterval> | undefined;
  private deadline: ReturnType<typeof setTimeout> | undefined;
  private handedOver = false;

  /**
   * `remoteInst` given: we answer a peer's hello (open at once). Not given:
   * we initiate, and `onHelloTick` runs before each repeated hello (it may
   * close this session to take another path).
   */
  constructor(
    private readonly host: SessionHost,
    readonly peer: string,
    remoteInst: string | undefined,
    private readonly onHelloTick?: (s: RtcSession) => void,
  ) {
    this.offerer = host.name > peer;
    this.remoteInst = remoteInst;
    this.pc = new RTCPeerConnection({ iceServers: [] });
    this.pc.addEventListener('icecandidate', (e) => {
      if (e.candidate && this.state === 'open') this.send('candidate', { candidate: e.candidate.toJSON() });
    });
    this.pc.addEventListener('negotiationneeded', () => {
      if (this.state !== 'open') return;
      if (this.offerer) this.wantOffer();
      else this.askForOffer();
    });
    this.pc.addEventListener('track', (e) => this.onTrack(e));
    this.pc.addEventListener('connectionstatechange', () => {
      if (this.pc.connectionState === 'failed') this.close('failed', true);
    });
    if (remoteInst !== undefined) {
      this.state = 'open';
      this.opened.resolve();
    } else {
      this.state = 'hello';
      this.sayHello();
      this.helloTimer = setInterval(() => {
        this.onHelloTick?.(this);
        if (this.state === 'hello') this.sayHello();
      }, HELLO_INTERVAL_MS);
      this.deadline = setTimeout(() => {
        if (this.state !== 'hello') return;
        this.opened.reject(
          new WindowRelayError(
            'unreachable',
            `window "${peer}" did not answer within ${host.connectTimeoutMs} ms; is it open, and does it run a WindowPeerConnection named "${peer}" on the same relay?`,
          ),
        );
        this.close('unreachable', true);
      }, host.connectTimeoutMs);
    }
  }

  get ready(): Promise<void> {
    return this.opened.promise;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Answers a (possibly repeated) hello from the peer's instance `inst`. */
  welcome(inst: string): void {
    if (this.state === 'closed') return;
    if (this.state === 'hello') this.open(inst);
    this.send('welcome', {});
  }

  /** The peer answered our hello. */
  welcomed(inst: string): void {
    if (this.state === 'hello') this.open(inst);
  }

  /** Another session took over from this one before it opened: `ready` follows that one. */
  handOver(ready: Promise<void>): void {
    if (!this.opened.settled()) ready.then(this.opened.resolve, this.opened.reject);
    this.handedOver = true;
  }

  /** The peer said its page refused us. */
  refused(): void {
    if (this.state === 'closed') return;
    this.opened.reject(new WindowRelayError('refused', `window "${this.peer}" refused the connection`));
    this.close('refused', false);
  }

  /** An offer, answer, need or candidate from the peer. */
  signal(type: string, body: Record<string, unknown>): void {
    if (this.state !== 'open') return;
    if (type === 'offer' && typeof body.sdp === 'string' && !this.offerer) void this.onOffer(body.sdp);
    else if (type === 'answer' && typeof body.sdp === 'string' && this.offerer) void this.onAnswer(body.sdp);
    else if (type === 'need' && this.offerer) this.onNeed(body);
    else if (type === 'candidate' && body.candidate !== null && typeof body.candidate === 'object') void this.onCandidate(body.candidate as RTCIceCandidateInit);
    else this.host.report(new WindowRelayError('bad-message', `dropped an unexpected "${type}" message from "${this.peer}"`), this.peer);
  }

  addStream(stream: MediaStream): void {
    if (this.state === 'closed' || this.outgoing.has(stream)) return;
    const out: Outgoing = { clone: cloneStream(stream), senders: [] };
    this.outgoing.set(stream, out);
    if (this.state === 'open') this.addTracks(out);
  }

  removeStream(stream: MediaStream): void {
    const out = this.outgoing.get(stream);
    if (!out) return;
    this.outgoing.delete(stream);
    if (this.state !== 'closed') {
      for (const sender of out.senders) {
        try {
          this.pc.removeTrack(sender);
        } catch (e) {
          this.host.report(new WindowRelayError('negotiation', `could not remove a track from the connection to "${this.peer}": ${describe(e)}`, { cause: e }), this.peer);
        }
      }
    }
    stopTracks(out.clone);
  }

  close(reason: CloseReason, notify: boolean, announce = true): void {
    if (this.state === 'closed') return;
    const wasHello = this.state === 'hello';
    this.state = 'closed';
    clearInterval(this.helloTimer);
    clearTimeout(this.deadline);
    if (notify) this.send('end', { reason });
    for (const out of this.outgoing.values()) stopTracks(out.clone);
    this.outgoing.clear();
    const incoming = [...this.incoming.values()];
    this.incoming.clear();
    this.pc.close();
    for (const inc of incoming) {
      for (const t of inc.tracks) t.stop();
      stopTracks(inc.stream);
      this.host.streamGone(this, inc.stream);
    }
    if (!this.opened.settled() && !this.handedOver) this.opened.reject(new WindowRelayError('closed', `the connection to "${this.peer}" closed (${reason}) before it opened`));
    this.host.sessionClosed(this, reason, announce && !(wasHello && reason === 'replaced'));
  }

  // ---------------------------------------------------------------------

  private open(inst: string): void {
    this.remoteInst = inst;
    this.state = 'open';
    clearInterval(this.helloTimer);
    clearTimeout(this.deadline);
    for (const out of this.outgoing.values()) this.addTracks(out);
    this.opened.resolve();
  }

  private sayHello(): void {
    this.host.send(this.peer, 'hello', {});
  }

  private send(type: string, payload: Record<string, unknown>): void {
    this.host.send(this.peer, type, payload, this.remoteInst);
  }

  private addTracks(out: Outgoing): void {
    for (const track of out.clone.getTracks()) out.senders.push(this.pc.addTrack(track, out.clone));
  }

  private reportNegotiation(what: string, e: unknown): void {
    if (this.state === 'open') this.host.report(new WindowRelayError('negotiation', `${what} "${this.peer}": ${describe(e)}`, { cause: e }), this.peer);
  }

  /** Offerer: offer now, or after the answer to the offer that is out. */
  private wantOffer(): void {
    if (this.offering) {
      this.offerWanted = true;
      return;
    }
    void this.makeOffer();
  }

  private async makeOffer(): Promise<void> {
    this.offering = true;
    this.offerWanted = false;
    try {
      await this.pc.setLocalDescription();
      const d = this.pc.localDescription;
      if (d && this.state === 'open') this.send('offer', { sdp: d.sdp });
    } catch (e) {
      this.offering = false;
      this.reportNegotiation('could not make an offer to', e);
    }
  }

  private async onAnswer(sdp: string): Promise<void> {
    if (!this.offering) return;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (e) {
      this.reportNegotiation('could not apply the answer from', e);
    }
    this.offering = false;
    if (this.offerWanted && this.state === 'open') void this.makeOffer();
  }

  /** Offerer: the peer has new tracks (or removed some); give it m-lines and offer. */
  private onNeed(body: Record<string, unknown>): void {
    for (const kind of ['audio', 'video'] as const) {
      const wanted = Math.min(Math.max(Math.trunc(Number(body[kind]) || 0), 0), 64);
      // New m-lines of this kind our next offer will carry anyway; the peer's tracks may take any of them.
      let free = 0;
      for (const t of this.pc.getTransceivers()) if (t.mid === null && t.currentDirection !== 'stopped' && t.receiver.track.kind === kind) free++;
      for (let i = free; i < wanted; i++) this.pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    this.wantOffer();
  }

  /** Answerer: asks the offerer to offer, with as many new m-lines as we have new tracks. */
  private askForOffer(): void {
    const need = { audio: 0, video: 0 };
    for (const t of this.pc.getTransceivers()) {
      const track = t.sender.track;
      if (t.mid === null && t.currentDirection !== 'stopped' && track && (track.kind === 'audio' || track.kind === 'video')) need[track.kind]++;
    }
    this.send('need', need);
  }

  private async onOffer(sdp: string): Promise<void> {
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      await this.pc.setLocalDescription();
      const d = this.pc.localDescription;
      if (d && this.state === 'open') this.send('answer', { sdp: d.sdp });
    } catch (e) {
      this.reportNegotiation('could not answer the offer from', e);
    }
  }

  private async onCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (e) {
      this.reportNegotiation('could not add an ICE candidate from', e);
    }
  }

  private onTrack(e: RTCTrackEvent): void {
    if (this.state !== 'open') return;
    for (const stream of e.streams) {
      let inc = this.incoming.get(stream.id);
      if (inc) {
        inc.tracks.add(e.track);
        continue;
      }
      inc = { stream, tracks: new Set([e.track]) };
      this.incoming.set(stream.id, inc);
      const entry = inc;
      // The sender removed the stream's tracks (removeTrack): the stream empties.
      stream.addEventListener('removetrack', (ev: MediaStreamTrackEvent) => {
        ev.track.stop();
        if (stream.getTracks().length > 0 || this.incoming.get(stream.id) !== entry) return;
        this.incoming.delete(stream.id);
        this.host.streamGone(this, stream);
      });
      this.host.streamArrived(this, stream);
    }
  }
}
