// The media side of a group: who publishes which streams, who receives
// which, and the negotiation between them, in terms of the engine-neutral
// media API (up-streams and down-streams). Rules live here: only members
// with `present` publish; each member receives what its request asks for;
// leaving, kicking or unpresenting tears everything of that member down.
import type { BundleSession, CodecName, DownRequest, DownStream, IceCandidate, MediaEngine, StreamStats, UpStream } from '../media/engine.ts';
import type { IceServerInfo, PublishedStream, StreamEvent } from './client.ts';
import { CoreError } from './errors.ts';
import type { Member } from './group.ts';
import { type LayerRequest, type MediaRequest, STREAM_LABELS, isStreamLabel } from './vocabulary.ts';

export interface PublicationStats {
  /** The stream id as its publisher and subscribers know it. */
  id: string;
  label: string;
  /** Client id of the publisher. */
  owner: string;
  up: StreamStats;
  downs: { subscriber: string; stats: StreamStats }[];
}

interface Publication {
  key: string;
  id: string;
  label: string;
  owner: Member;
  up: UpStream;
  /** Subscriber id -> its down-stream of this publication. */
  downs: Map<string, Subscription>;
  /** Our candidates wait until the publisher has our answer. */
  held: IceCandidate[] | undefined;
  /** The stream it replaced, if any. */
  replaces: string | undefined;
  /** How track-level clients see it; set once it has been announced to them. */
  view: PublishedStream | undefined;
}

interface Subscription {
  subscriber: Member;
  down: DownStream;
  pub: Publication;
  /** An offer is out and no answer has come back yet. */
  offering: boolean;
  /** Another offer is needed once the current one is answered. */
  again: boolean;
  /** How many up-tracks the source had when this down-stream was made. */
  tracks: number;
  /** Our candidates wait until the subscriber has our first offer. */
  held: IceCandidate[] | undefined;
  /** The subscriber offered and we answered (WHEP): the member's request does not govern it and it is never re-offered. */
  answerer?: boolean;
  /** What `requestStream` asked of this one stream; it wins over the member's `request` until cleared. */
  override?: DownRequest | undefined;
}

const CODECS: Record<string, CodecName> = { vp8: 'vp8', vp9: 'vp9', h264: 'h264', opus: 'opus' };

export interface StreamsEnv {
  engine: MediaEngine;
  /** The group's name: streams of one group stay together in the engine. */
  placement: string;
  iceServers: () => IceServerInfo[];
  /** The group's `codecs` field, if any. */
  codecs: () => string[] | undefined;
  members: () => Iterable<Member>;
  onError: (member: Member, e: unknown) => void;
}

export class GroupStreams {
  private readonly pubs = new Map<string, Publication>();
  private readonly requests = new Map<string, MediaRequest>();
  /** Bundle sessions made for members (bundleSession), while open: their sends appear in stats() as down-streams. */
  private readonly bundles = new Map<BundleSession, Member>();

  constructor(private readonly env: StreamsEnv) {}

  get publicationCount(): number {
    return this.pubs.size;
  }

  // -------------------------------------------------------------------
  // Publisher side

  /** A publisher's offer: a new stream, a renegotiation, or a replacement. */
  async offer(member: Member, msg: { id: string; label: string; sdp: string; replace?: string | undefined }): Promise<void> {
    const key = keyOf(member, msg.id);
    let pub = this.pubs.get(key);
    if (!pub) {
      if (!member.has('present')) {
        member.client.deliver(streamEvent({ kind: 'abort', id: msg.id }));
        throw new CoreError('not-permitted', 'you need the "present" permission to publish a stream');
      }
      if (!isStreamLabel(msg.label)) {
        member.client.deliver(streamEvent({ kind: 'abort', id: msg.id }));
        throw new CoreError('bad-message', `unknown stream label "${msg.label}": use ${STREAM_LABELS.slice(0, -1).join(', ')} or ${STREAM_LABELS.at(-1)}`);
      }
      if (!/^v=0\r?\n/.test(msg.sdp) || !/\nm=(audio|video) /.test(msg.sdp)) {
        member.client.deliver(streamEvent({ kind: 'abort', id: msg.id }));
        throw new CoreError('bad-message', 'the offer is not an SDP with audio or video sections');
      }
      if (msg.replace) this.closeUp(member, msg.replace, { tellOwner: false });
      const up = this.env.engine.createUpStream({
        id: `${member.id}/${msg.id}`,
        label: msg.label,
        placement: this.env.placement,
        iceServers: this.env.iceServers(),
        ...this.codecOption(),
      });
      pub = { key, id: msg.id, label: msg.label, owner: member, up, downs: new Map(), held: [], replaces: msg.replace || undefined, view: undefined };
      this.pubs.set(key, pub);
      const p = pub;
      up.on('candidate', (candidate) => {
        if (p.held) p.held.push(candidate);
        else member.client.deliver(streamEvent({ kind: 'ice', id: msg.id, candidate }));
      });
      up.on('track', () => this.offerToSubscribers(p));
      up.on('renegotiate', () => {
        if (this.pubs.get(p.key) === p) member.client.deliver(streamEvent({ kind: 'renegotiate', id: p.id }));
      });
      up.on('close', () => {
        // Closed by the engine itself (ICE failed, a media worker died): the
        // publisher still holds its side, so ask it to close and re-publish.
        if (this.pubs.get(p.key) === p) member.client.deliver(streamEvent({ kind: 'abort', id: p.id }));
        this.forget(p);
      });
    }
    let answer: string;
    try {
      answer = await pub.up.answer(msg.sdp);
    } catch (e) {
      // Closed while we answered (the publisher sent `close`, or left): nothing to report.
      if (pub.up.closed || this.pubs.get(key) !== pub) return;
      this.closeUp(member, msg.id, { tellOwner: true });
      throw new CoreError('bad-message', `the offer for stream "${msg.id}" could not be used: ${(e as Error).message}`);
    }
    if (pub.up.closed) return;
    member.client.deliver(streamEvent({ kind: 'answer', id: msg.id, sdp: answer }));
    flushCandidates(pub, member, msg.id);
    this.offerToSubscribers(pub);
    this.announce(pub);
  }

  /** The publisher closed one of its streams. */
  closeUp(member: Member, id: string, opts: { tellOwner: boolean } = { tellOwner: false }): void {
    const pub = this.pubs.get(keyOf(member, id));
    if (!pub) return;
    if (opts.tellOwner) member.client.deliver(streamEvent({ kind: 'abort', id }));
    this.forget(pub);
    pub.up.close();
  }

  /**
   * A stream the dialect received itself, as an up-stream it made (the
   * sources a Jitsi client announced on its bundle session): published like
   * an offered one, with no SDP exchanged. Closing it (closeUp, the member
   * leaving) closes that up-stream.
   */
  publishUp(member: Member, msg: { id: string; label: string; up: UpStream }): void {
    const key = keyOf(member, msg.id);
    if (this.pubs.has(key)) throw new CoreError('bad-message', `you already publish a stream "${msg.id}"`);
    if (!member.has('present')) throw new CoreError('not-permitted', 'you need the "present" permission to publish a stream');
    if (!isStreamLabel(msg.label)) throw new CoreError('bad-message', `unknown stream label "${msg.label}"`);
    const pub: Publication = { key, id: msg.id, label: msg.label, owner: member, up: msg.up, downs: new Map(), held: undefined, replaces: undefined, view: undefined };
    this.pubs.set(key, pub);
    msg.up.on('track', () => this.offerToSubscribers(pub));
    msg.up.on('close', () => this.forget(pub));
    this.offerToSubscribers(pub);
    this.announce(pub);
  }

  /**
   * A bundle session (media/engine.ts) for a member whose client keeps one
   * transport for everything it sends and receives; null when the engine
   * cannot make one.
   */
  bundleSession(member: Member): BundleSession | null {
    const engine = this.env.engine;
    if (!engine.createBundleSession) return null;
    const bundle = engine.createBundleSession({ id: `${member.id}/bundle`, iceServers: this.env.iceServers(), placement: this.env.placement });
    this.bundles.set(bundle, member);
    bundle.on('close', () => this.bundles.delete(bundle));
    return bundle;
  }

  // -------------------------------------------------------------------
  // Subscriber side

  setRequest(member: Member, request: MediaRequest): void {
    this.requests.set(member.id, request);
    for (const pub of this.pubs.values()) this.reconcile(pub, member);
  }

  /** A subscriber's answer to our offer. */
  async answer(member: Member, id: string, sdp: string): Promise<void> {
    const sub = this.subscription(member, id);
    await sub.down.setAnswer(sdp);
    sub.offering = false;
    if (sub.again) {
      sub.again = false;
      await this.sendOffer(sub, false);
    }
  }

  /** The subscriber wants an ICE restart (`renegotiate`). */
  async renegotiate(member: Member, id: string): Promise<void> {
    await this.sendOffer(this.subscription(member, id), true);
  }

  /**
   * The subscriber changes what one down-stream carries (`requestStream`);
   * with no request (Galène's client sends null) the stream goes back to
   * what the member's `request` says for its label.
   */
  requestStream(member: Member, id: string, layers: LayerRequest | undefined): void {
    const sub = this.subscription(member, id);
    sub.override = layers;
    const request = sub.override ?? this.requestFor(member, sub.pub.label);
    if (!request.audio && request.video === 'none') {
      this.closeDown(sub);
      return;
    }
    sub.down.setRequest(request);
  }

  /** The subscriber asks us to stop sending a down-stream (`abort`). */
  abort(member: Member, id: string): void {
    this.closeDown(this.subscription(member, id));
  }

  /** A trickled candidate, for an up-stream of the member or a down-stream to it. */
  async candidate(member: Member, id: string, candidate: IceCandidate | null): Promise<void> {
    const stream = this.pubs.get(keyOf(member, id))?.up ?? this.findSubscription(member, id)?.down;
    if (!stream) throw new CoreError('bad-message', `there is no stream with id "${id}" on this connection`);
    try {
      await stream.addIceCandidate(candidate);
    } catch (e) {
      if (e instanceof CoreError) throw e;
      // The engine refuses a candidate it cannot use (malformed, or for a media section the stream does not
      // have): the client's mistake, answered as such rather than as an internal error.
      throw new CoreError('bad-message', `the ICE candidate for stream "${id}" was refused: ${(e as Error).message ?? String(e)}`);
    }
  }

  /**
   * A subscriber that offers (WHEP): a down-stream of the publication named
   * by `stream` (a stream id, or its owner's id and stream id as
   * "owner/id"), or of the group's active stream — the newest publication
   * with video, else the newest — answered with the server's SDP. The
   * member's `request` does not govern it; it closes with its publication.
   */
  async answerSubscriber(member: Member, offerSdp: string, stream?: string): Promise<{ id: string; sdp: string; label: string; owner: Member }> {
    const pub = this.pickPublication(stream);
    if (!pub) {
      throw new CoreError('bad-message', stream === undefined ? 'nobody in this group is publishing a stream yet' : `there is no stream "${stream}" in this group`);
    }
    if (pub.owner === member) throw new CoreError('bad-message', 'a client cannot subscribe to its own stream');
    const existing = pub.downs.get(member.id);
    if (existing) this.closeDown(existing);
    const down = this.env.engine.createDownStream({
      id: `${member.id}/${pub.owner.id}/${pub.id}`,
      source: pub.up,
      request: { audio: true, video: 'high' },
      iceServers: this.env.iceServers(),
    });
    const sub: Subscription = { subscriber: member, down, pub, offering: false, again: false, held: undefined, tracks: pub.up.tracks.length, answerer: true };
    pub.downs.set(member.id, sub);
    down.on('close', () => {
      if (pub.downs.get(member.id) === sub) {
        pub.downs.delete(member.id);
        member.client.deliver(streamEvent({ kind: 'close', id: pub.id }));
      }
    });
    let sdp: string;
    try {
      sdp = await down.answer(offerSdp);
    } catch (e) {
      this.closeDown(sub);
      throw new CoreError('bad-message', `the offer could not be used: ${(e as Error).message}`);
    }
    if (down.closed) throw new CoreError('bad-message', `stream "${pub.id}" ended while the offer was answered`);
    return { id: pub.id, sdp, label: pub.label, owner: pub.owner };
  }

  /** ICE restart of a down-stream the subscriber offered (WHEP PATCH): a new offer, the new answer. */
  async reanswerSubscriber(member: Member, id: string, offerSdp: string): Promise<string> {
    const sub = this.subscription(member, id);
    if (!sub.answerer) throw new CoreError('bad-message', `stream "${id}" is offered by the server; answer its offers instead`);
    return sub.down.answer(offerSdp);
  }

  /** The publication a subscriber naming `stream` (or nothing: the active one) would get, as track-level clients see it. */
  findPublication(stream?: string): { id: string; label: string; owner: Member } | undefined {
    const pub = this.pickPublication(stream);
    return pub && { id: pub.id, label: pub.label, owner: pub.owner };
  }

  private pickPublication(stream: string | undefined): Publication | undefined {
    const pubs = [...this.pubs.values()].filter((p) => !p.up.closed && p.up.tracks.length > 0);
    if (stream !== undefined) return pubs.find((p) => p.id === stream || `${p.owner.id}/${p.id}` === stream);
    // newest first: the Map keeps insertion order
    const newest = pubs.reverse();
    return newest.find((p) => p.up.tracks.some((t) => t.kind === 'video')) ?? newest[0];
  }

  // -------------------------------------------------------------------
  // Membership

  /** A member joined: a track-level client is told of the publications already there. */
  memberJoined(member: Member): void {
    const consumer = member.client.tracks;
    if (!consumer) return;
    for (const pub of this.pubs.values()) if (pub.view) consumer.published(pub.view);
  }

  /** Tears down every stream the member sends or receives. */
  memberLeft(member: Member): void {
    this.requests.delete(member.id);
    for (const pub of [...this.pubs.values()]) {
      if (pub.owner === member) {
        this.forget(pub);
        pub.up.close();
      } else {
        const sub = pub.downs.get(member.id);
        if (sub) {
          pub.downs.delete(member.id);
          sub.down.close();
        }
      }
    }
  }

  /** Without `present`, a member's streams are stopped and it is asked to close them. */
  permissionsChanged(member: Member): void {
    if (member.has('present')) return;
    for (const pub of [...this.pubs.values()]) if (pub.owner === member) this.closeUp(member, pub.id, { tellOwner: true });
  }

  /** Per-stream statistics: each publication with its down-streams. */
  async stats(): Promise<PublicationStats[]> {
    return Promise.all(
      [...this.pubs.values()].map(async (p) => ({
        id: p.id,
        label: p.label,
        owner: p.owner.id,
        up: await p.up.stats(),
        downs: [...(await Promise.all([...p.downs.values()].map(async (sub) => ({ subscriber: sub.subscriber.id, stats: await sub.down.stats() })))), ...this.bundleStats(p)],
      })),
    );
  }

  /** What bundle sessions send of a publication, one down-stream entry per receiving member. */
  private bundleStats(p: Publication): { subscriber: string; stats: StreamStats }[] {
    const out: { subscriber: string; stats: StreamStats }[] = [];
    for (const [bundle, member] of this.bundles) {
      if (bundle.closed) continue;
      const tracks = bundle.sends().filter((s) => p.up.tracks.includes(s.track));
      if (tracks.length === 0) continue;
      const stats: StreamStats = { id: bundle.id, state: bundle.state, tracks: tracks.map((s) => s.stats()) };
      if (bundle.availableBitrate > 0) stats.availableBitrate = bundle.availableBitrate;
      out.push({ subscriber: member.id, stats });
    }
    return out;
  }

  /**
   * The loudest recent audio level (0..1, RFC 6464) of each member that
   * publishes audio with the level extension, by member id: what a
   * dominant-speaker choice reads. Only up-streams are asked.
   */
  async audioLevels(): Promise<Map<string, number>> {
    const levels = new Map<string, number>();
    await Promise.all(
      [...this.pubs.values()].map(async (p) => {
        if (p.up.closed || !p.up.tracks.some((t) => t.kind === 'audio')) return;
        const stats = await p.up.stats().catch(() => undefined);
        for (const t of stats?.tracks ?? []) {
          if (t.kind === 'audio' && t.audioLevel !== undefined) levels.set(p.owner.id, Math.max(levels.get(p.owner.id) ?? 0, t.audioLevel));
        }
      }),
    );
    return levels;
  }

  close(): void {
    for (const pub of [...this.pubs.values()]) {
      this.forget(pub);
      pub.up.close();
    }
  }

  // -------------------------------------------------------------------

  /** Tells the track-level clients (the recorder) of a publication or of its new tracks. */
  private announce(pub: Publication): void {
    if (pub.up.closed || pub.up.tracks.length === 0 || this.pubs.get(pub.key) !== pub) return;
    pub.view ??= { key: pub.key, id: pub.id, label: pub.label, owner: { id: pub.owner.id, username: pub.owner.username }, up: pub.up, replaces: pub.replaces };
    for (const m of this.env.members()) if (m !== pub.owner) m.client.tracks?.published(pub.view);
  }

  private offerToSubscribers(pub: Publication): void {
    if (pub.up.tracks.length === 0) return;
    for (const m of this.env.members()) this.reconcile(pub, m);
  }

  /** Makes the member's down-stream of `pub` match its request: create, change or close. */
  private reconcile(pub: Publication, member: Member): void {
    if (member === pub.owner || pub.up.closed || pub.up.tracks.length === 0 || pub.downs.get(member.id)?.answerer) return;
    const existing = pub.downs.get(member.id);
    const request = existing?.override ?? this.requestFor(member, pub.label);
    if (!request.audio && request.video === 'none') {
      if (existing) this.closeDown(existing);
      return;
    }
    if (existing && existing.tracks !== pub.up.tracks.length) {
      // The publisher added a track: a fresh down-stream carries it (a
      // down-stream's m-lines are fixed when it is made).
      this.closeDown(existing);
    } else if (existing) {
      existing.down.setRequest(request);
      return;
    }
    const down = this.env.engine.createDownStream({
      id: `${member.id}/${pub.owner.id}/${pub.id}`,
      source: pub.up,
      request,
      iceServers: this.env.iceServers(),
    });
    const sub: Subscription = { subscriber: member, down, pub, offering: false, again: false, held: [], tracks: pub.up.tracks.length, override: existing?.override };
    pub.downs.set(member.id, sub);
    down.on('candidate', (candidate) => {
      if (sub.held) sub.held.push(candidate);
      else member.client.deliver(streamEvent({ kind: 'ice', id: pub.id, candidate }));
    });
    down.on('renegotiate', () => void this.sendOffer(sub, false).catch((e) => this.env.onError(member, e)));
    down.on('close', () => {
      if (pub.downs.get(member.id) === sub) {
        pub.downs.delete(member.id);
        member.client.deliver(streamEvent({ kind: 'close', id: pub.id }));
      }
    });
    void this.sendOffer(sub, false).catch((e) => this.env.onError(member, e));
  }

  private async sendOffer(sub: Subscription, iceRestart: boolean): Promise<void> {
    if (sub.down.closed) return;
    if (sub.offering && !iceRestart) {
      sub.again = true;
      return;
    }
    sub.offering = true;
    let sdp: string;
    try {
      sdp = await sub.down.offer({ iceRestart });
    } catch (e) {
      sub.offering = false;
      throw e;
    }
    if (sub.down.closed) return;
    const { pub } = sub;
    sub.subscriber.client.deliver(streamEvent({ kind: 'offer', id: pub.id, label: pub.label, source: pub.owner.id, username: pub.owner.username, sdp }));
    flushCandidates(sub, sub.subscriber, pub.id);
  }

  private closeDown(sub: Subscription): void {
    const { pub, subscriber } = sub;
    if (pub.downs.get(subscriber.id) !== sub) return;
    pub.downs.delete(subscriber.id);
    sub.down.close();
    subscriber.client.deliver(streamEvent({ kind: 'close', id: pub.id }));
  }

  private forget(pub: Publication): void {
    if (this.pubs.get(pub.key) !== pub) return;
    this.pubs.delete(pub.key);
    for (const sub of [...pub.downs.values()]) this.closeDown(sub);
    const view = pub.view;
    if (view) for (const m of this.env.members()) if (m !== pub.owner) m.client.tracks?.unpublished(view);
  }

  private requestFor(member: Member, label: string): DownRequest {
    const r = this.requests.get(member.id);
    return r?.[label] ?? r?.[''] ?? { audio: false, video: 'none' };
  }

  private subscription(member: Member, id: string): Subscription {
    const sub = this.findSubscription(member, id);
    if (!sub) throw new CoreError('bad-message', `there is no stream with id "${id}" sent to you`);
    return sub;
  }

  private findSubscription(member: Member, id: string): Subscription | undefined {
    for (const pub of this.pubs.values()) {
      if (pub.id !== id) continue;
      const sub = pub.downs.get(member.id);
      if (sub) return sub;
    }
    return undefined;
  }

  private codecOption(): { codecs?: CodecName[] } {
    const names = this.env.codecs();
    if (!names) return {};
    const codecs = names.map((n) => CODECS[n.toLowerCase()]).filter((c): c is CodecName => c !== undefined);
    return { codecs };
  }
}

/** Sends the candidates gathered before the SDP they belong to went out. */
function flushCandidates(holder: { held: IceCandidate[] | undefined }, to: Member, id: string): void {
  const held = holder.held;
  holder.held = undefined;
  for (const candidate of held ?? []) to.client.deliver(streamEvent({ kind: 'ice', id, candidate }));
}

function keyOf(member: Member, id: string): string {
  return `${member.id}\u0000${id}`;
}

type WithoutType<T> = T extends unknown ? Omit<T, 'type'> : never;

function streamEvent(e: WithoutType<StreamEvent>): StreamEvent {
  return { type: 'stream', ...e } as StreamEvent;
}
