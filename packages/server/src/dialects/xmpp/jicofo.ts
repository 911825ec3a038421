// The focus's Jicofo mode: what Jitsi's own clients (lib-jitsi-meet) expect.
// An occupant gets ONE Jingle session for the whole conference, on one
// bundle session of the media engine (media/engine.ts BundleSession): the
// focus's session-initiate carries every stream of the group already
// published, and afterwards sources come and go by `source-add` and
// `source-remove` alone, which the client applies to its copy of the remote
// SDP and answers locally (only an IQ result comes back). The client's own
// sources, in its session-accept or a later source-add, become Atrium
// streams of that member: audio with its camera as one stream, a desktop
// video as a screenshare, published in the core like any other.
//
// Content names are Jicofo's ("audio", "video"); the engine's SDP names its
// m-lines by mid, and the answer's names are mapped back before it is used.
import { randomBytes } from 'node:crypto';
import type { PublishedStream, TrackConsumer } from '../../core/client.ts';
import { isCoreError } from '../../core/errors.ts';
import type { BundleReceiveTrack, BundleSend, BundleSession, SourceStream } from '../../media/engine.ts';
import type { JingleContent, JingleSource } from './jingle/model.ts';
import { JingleSdpError, candidateLine, jingleToSdp, parseCandidateLine, sdpToJingle } from './jingle/sdp.ts';
import { JNS, JingleXmlError, appendDescription, candidateElement, readDescription, readTransport, sourceElement } from './jingle/xml.ts';
import type { Occupant } from './muc.ts';
import { StanzaError, conditionOf } from './stanza.ts';
import { type Element, attr, el } from './xml.ts';

type Kind = 'audio' | 'video';
const KINDS: readonly Kind[] = ['audio', 'video'];

/** One up-track of a publication being sent to this occupant. */
interface Sent {
  send: BundleSend;
  source: JingleSource;
}

/** A stream the occupant publishes from its bundle: its sources and the core's stream. */
interface Own {
  label: 'camera' | 'screenshare';
  id: string;
  sources: Map<Kind, JingleSource[]>;
  groups: Map<Kind, { semantics: string; ssrcs: number[] }[]>;
  stream: SourceStream | undefined;
}

function jingleError(condition: StanzaError['condition'], jingleCondition: string | undefined, text: string): StanzaError {
  return new StanzaError(condition, text, jingleCondition ? el(jingleCondition, { xmlns: JNS.errors }) : undefined);
}

export class BundleFocus implements TrackConsumer {
  readonly sid = randomBytes(8).toString('hex');
  private bundle: BundleSession | undefined;
  /** Publication key -> what of it is sent here. */
  private readonly sent = new Map<string, { p: PublishedStream; tracks: Map<string, Sent> }>();
  private readonly own = new Map<string, Own>();
  /** Content name -> the engine's mid, and back. */
  private readonly midOf = new Map<string, string>();
  private readonly nameOf = new Map<string, string>();
  private initiated = false;
  private accepted = false;
  private ended = false;
  private readonly heldCandidates: Element[] = [];

  /** The engine gave a bundle session (false before start() and on an engine without them). */
  get running(): boolean {
    return this.bundle !== undefined;
  }

  constructor(
    private readonly occupant: Occupant,
    private readonly focusJid: string,
    private readonly bridgeUrl: () => string | undefined,
    /** Sources were added: the receiver's constraints apply to them. */
    private readonly sourcesChanged: () => void = () => {},
  ) {}

  /** Starts the session: the bundle, the group's streams as sources, the session-initiate. */
  async start(): Promise<void> {
    const member = this.occupant.member;
    const streams = member?.group.streams;
    if (!member || !streams) return;
    const bundle = streams.bundleSession(member);
    if (!bundle) {
      this.occupant.session.ctx.log.warn('the media engine makes no bundle sessions: Jitsi clients get no media');
      return;
    }
    this.bundle = bundle;
    bundle.on('candidate', (c) => {
      let cand;
      try {
        cand = parseCandidateLine(c.candidate);
      } catch {
        return;
      }
      const name = this.nameOf.get(c.sdpMid ?? '') ?? 'audio';
      const content = el('content', { creator: 'initiator', name }, el('transport', { xmlns: JNS.ice, ufrag: c.usernameFragment ?? undefined }, candidateElement(cand)));
      if (this.initiated) this.sendJingle('transport-info', [content]);
      else this.heldCandidates.push(content);
    });
    bundle.on('close', () => {
      if (!this.ended) this.terminate('connectivity-error', 'the media connection failed; join again');
    });
    // The streams already there (the core replays them to a track consumer).
    streams.memberJoined(member);
    const sdp = await bundle.offer();
    if (this.ended) return;
    const desc = sdpToJingle(sdp, { author: 'initiator', creator: 'initiator', names: 'mid' });
    const url = this.bridgeUrl();
    for (const c of desc.contents) {
      const name = c.rtp?.media ?? 'data';
      const mid = c.name;
      this.midOf.set(name, mid);
      this.nameOf.set(mid, name);
      c.name = name;
      c.senders = 'both';
      if (url) c.transport.webSocket = url;
      if (c.rtp) {
        c.rtp.sources = [];
        c.rtp.ssrcGroups = [];
        for (const { tracks } of this.sent.values()) for (const s of tracks.values()) if (s.send.kind === c.rtp.media) c.rtp.sources.push(s.source);
      }
    }
    if (desc.bundle) desc.bundle = desc.bundle.map((m) => this.nameOf.get(m) ?? m);
    this.initiated = true;
    const jingle = this.jingle('session-initiate');
    appendDescription(jingle, desc);
    this.request(jingle, true);
    for (const c of this.heldCandidates.splice(0)) this.sendJingle('transport-info', [c]);
  }

  /** The video sources sent to this occupant, with their owner's member id and source name (what constraints and ForwardedSources name). */
  videoSends(): { owner: string; names: string[]; send: BundleSend }[] {
    const out: { owner: string; names: string[]; send: BundleSend }[] = [];
    for (const { p, tracks } of this.sent.values())
      for (const s of tracks.values()) if (s.send.kind === 'video') out.push({ owner: p.owner.id, names: s.source.name ? [s.source.name] : [], send: s.send });
    return out;
  }

  /** The occupant left: the session ends, its streams are unpublished. */
  close(): void {
    if (!this.ended) this.terminate('gone', 'you left the room');
  }

  // ---------------------------------------------------------------------
  // From the core (TrackConsumer)

  published(p: PublishedStream): void {
    if (this.ended || !this.bundle || p.owner.id === this.occupant.id) return;
    let entry = this.sent.get(p.key);
    if (!entry) {
      entry = { p, tracks: new Map() };
      this.sent.set(p.key, entry);
    }
    const room = this.occupant.room;
    const nick = room.nickOf(p.owner.id, p.owner.username);
    const ordinal = room.streamOrdinal(p.owner.id, p.id);
    const msid = `${nick}-${p.label}-${ordinal}`.replace(/[^A-Za-z0-9_.-]/g, '_');
    const added: Sent[] = [];
    for (const t of p.up.tracks) {
      if (entry.tracks.has(t.id)) continue;
      let send: BundleSend;
      try {
        send = this.bundle.send(t);
      } catch (e) {
        // e.g. a VP9 or H.264 publisher: the message names the track, its codec and why
        this.occupant.session.ctx.log.warn({ stream: p.id, track: t.id, codec: t.codec, receiver: this.occupant.id }, `a track is not sent to a Jitsi client: ${(e as Error).message}`);
        continue;
      }
      const n = [...entry.tracks.values()].filter((s) => s.send.kind === t.kind).length;
      const source: JingleSource = {
        ssrc: send.ssrc,
        name: `${nick}-${t.kind[0]}${ordinal}${n > 0 ? `.${n}` : ''}`,
        msid: `${msid} ${msid}-${t.kind}${n > 0 ? n : ''}`,
        cname: msid,
        owner: `${room.jid}/${nick}`,
        ...(t.kind === 'video' ? { videoType: p.label === 'screenshare' ? 'desktop' : 'camera' } : {}),
      };
      const sent = { send, source };
      entry.tracks.set(t.id, sent);
      added.push(sent);
    }
    if (this.initiated && added.length > 0) this.sendSources('source-add', added);
    if (added.some((s) => s.send.kind === 'video')) this.sourcesChanged();
  }

  unpublished(p: PublishedStream): void {
    const entry = this.sent.get(p.key);
    if (!entry) return;
    this.sent.delete(p.key);
    for (const s of entry.tracks.values()) s.send.stop();
    if (this.initiated && !this.ended && entry.tracks.size > 0) this.sendSources('source-remove', [...entry.tracks.values()]);
  }

  // ---------------------------------------------------------------------
  // From the client

  /** A Jingle request of this session; returns after the ack is sent. */
  async handle(iq: Element, child: Element, action: string | undefined): Promise<void> {
    const session = this.occupant.session;
    const ack = () => session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from: this.focusJid }));
    const bundle = this.bundle;
    if (!bundle || this.ended) throw jingleError('item-not-found', 'unknown-session', `session "${this.sid}" is over`);
    try {
      switch (action) {
        case 'session-accept': {
          if (this.accepted) throw jingleError('bad-request', 'out-of-order', `session "${this.sid}" was accepted already`);
          const desc = readDescription(child);
          const contents: JingleContent[] = [];
          for (const kind of [...KINDS, 'data']) {
            const c = desc.contents.find((x) => (x.rtp?.media ?? 'data') === kind);
            const mid = this.midOf.get(kind);
            if (!c || mid === undefined) continue;
            c.name = mid;
            // Whatever directions the client wrote (lib-jitsi-meet writes them as if its SDP were the offer), both ways.
            if (c.rtp && !c.rejected) c.senders = 'both';
            contents.push(c);
          }
          if (!contents.some((c) => c.rtp)) throw jingleError('bad-request', undefined, 'the session-accept answers neither the audio nor the video content offered');
          desc.contents = contents;
          desc.bundle = contents.map((c) => c.name);
          ack();
          this.accepted = true;
          try {
            await bundle.setAnswer(jingleToSdp(desc, { author: 'responder' }));
          } catch (e) {
            this.terminate('failed-application', `the answer could not be used: ${(e as Error).message}`);
            return;
          }
          this.addOwn(desc.contents);
          return;
        }
        case 'source-add':
        case 'source-remove': {
          if (!this.accepted) throw jingleError('bad-request', 'out-of-order', `${action} before the session-accept`);
          const desc = readDescription(child, { sourcesOnly: true });
          ack();
          if (action === 'source-add') this.addOwn(desc.contents);
          else this.removeOwn(desc.contents);
          return;
        }
        case 'transport-info': {
          const jobs: Promise<void>[] = [];
          for (const content of child.getChildren('content')) {
            const given = attr(content, 'name') ?? 'audio';
            const mid = this.midOf.get(given) ?? given;
            const t = readTransport(content.getChild('transport', JNS.ice), `content "${given}"`);
            for (const c of t.candidates) jobs.push(bundle.addIceCandidate({ candidate: candidateLine(c), sdpMid: mid, usernameFragment: t.ufrag ?? null }));
          }
          ack();
          await Promise.all(jobs).catch(() => undefined);
          return;
        }
        case 'session-terminate':
          ack();
          this.end();
          return;
        case 'session-info':
          return ack();
        default:
          throw jingleError('feature-not-implemented', 'unsupported-info', `"${action ?? ''}" is not supported in a Jitsi conference session`);
      }
    } catch (e) {
      if (e instanceof JingleXmlError || e instanceof JingleSdpError) throw jingleError('bad-request', undefined, e.message);
      if (isCoreError(e)) throw new StanzaError(conditionOf(e.code), e.message);
      throw e;
    }
  }

  // ---------------------------------------------------------------------

  /** The client's own sources (session-accept, source-add): grouped into streams and published. */
  private addOwn(contents: JingleContent[]): void {
    const changed = new Set<Own>();
    for (const c of contents) {
      const kind = c.rtp?.media;
      if (!kind || !c.rtp) continue;
      for (const s of c.rtp.sources) {
        const label = kind === 'video' && s.videoType === 'desktop' ? 'screenshare' : 'camera';
        let own = this.own.get(label);
        if (!own) {
          own = { label, id: '', sources: new Map(), groups: new Map(), stream: undefined };
          this.own.set(label, own);
        }
        const list = own.sources.get(kind) ?? [];
        if (!list.some((x) => x.ssrc === s.ssrc)) list.push(s);
        own.sources.set(kind, list);
        const groups = own.groups.get(kind) ?? [];
        for (const g of c.rtp.ssrcGroups) if (g.ssrcs.includes(s.ssrc) && !groups.some((x) => x.semantics === g.semantics && x.ssrcs[0] === g.ssrcs[0])) groups.push(g);
        own.groups.set(kind, groups);
        changed.add(own);
      }
    }
    for (const own of changed) this.republish(own);
  }

  private removeOwn(contents: JingleContent[]): void {
    const gone = new Set(contents.flatMap((c) => c.rtp?.sources.map((s) => s.ssrc) ?? []));
    for (const own of this.own.values()) {
      let hit = false;
      for (const [kind, list] of own.sources) {
        const kept = list.filter((s) => !gone.has(s.ssrc));
        if (kept.length !== list.length) hit = true;
        own.sources.set(kind, kept);
        own.groups.set(
          kind,
          (own.groups.get(kind) ?? []).filter((g) => !g.ssrcs.some((x) => gone.has(x))),
        );
      }
      if (hit) this.republish(own);
    }
  }

  /** (Re)publishes one own stream with the sources it has now: a source stream's tracks are fixed when it is made. */
  private republish(own: Own): void {
    const member = this.occupant.member;
    const streams = member?.group.streams;
    const bundle = this.bundle;
    if (!member || !streams || !bundle) return;
    if (own.stream) {
      streams.closeUp(member, own.id);
      own.stream.close();
      own.stream = undefined;
    }
    const tracks: BundleReceiveTrack[] = [];
    for (const kind of KINDS) {
      const list = own.sources.get(kind) ?? [];
      const groups = own.groups.get(kind) ?? [];
      const secondary = new Set(groups.filter((g) => g.semantics === 'FID').map((g) => g.ssrcs[1]));
      const taken = new Set<number>();
      for (const g of groups.filter((x) => x.semantics === 'SIM')) {
        // Jitsi lists simulcast layers lowest first; the engine wants the highest first.
        tracks.push({ id: `${kind}${tracks.length}`, kind, ssrcs: [...g.ssrcs].reverse() });
        for (const x of g.ssrcs) taken.add(x);
      }
      for (const s of list) if (!taken.has(s.ssrc) && !secondary.has(s.ssrc)) tracks.push({ id: `${kind}${tracks.length}`, kind, ssrcs: [s.ssrc] });
    }
    if (tracks.length === 0) return;
    own.id = `${own.label}-${randomBytes(4).toString('hex')}`;
    try {
      own.stream = bundle.receive({ id: `${member.id}/${own.id}`, label: own.label, tracks });
      streams.publishUp(member, { id: own.id, label: own.label, up: own.stream.up });
    } catch (e) {
      own.stream?.close();
      own.stream = undefined;
      this.occupant.session.ctx.log.info({ err: e }, 'the sources of a Jitsi client could not be published');
    }
  }

  private sendSources(action: 'source-add' | 'source-remove', sources: Sent[]): void {
    const contents: Element[] = [];
    for (const kind of KINDS) {
      const list = sources.filter((s) => s.send.kind === kind);
      if (list.length === 0) continue;
      const d = el('description', { xmlns: JNS.rtp, media: kind });
      for (const s of list) d.cnode(sourceElement(s.source));
      contents.push(el('content', { creator: 'initiator', name: kind }, d));
    }
    this.sendJingle(action, contents);
  }

  private jingle(action: string): Element {
    return el('jingle', { xmlns: JNS.jingle, action, sid: this.sid, initiator: this.focusJid });
  }

  private sendJingle(action: string, children: Element[]): void {
    const j = this.jingle(action);
    for (const c of children) j.cnode(c);
    this.request(j, false);
  }

  private request(jingle: Element, fatal: boolean): void {
    void this.occupant.session.request(el('iq', { type: 'set', from: this.focusJid }, jingle)).then((reply) => {
      if (attr(reply, 'type') === 'error' && fatal && !this.ended) this.end();
    });
  }

  private terminate(reason: string, text: string): void {
    if (this.ended) return;
    if (this.initiated) {
      const j = el('jingle', { xmlns: JNS.jingle, action: 'session-terminate', sid: this.sid }, el('reason', {}, el(reason), el('text', {}, text)));
      void this.occupant.session.request(el('iq', { type: 'set', from: this.focusJid }, j));
    }
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    const member = this.occupant.member;
    for (const own of this.own.values()) {
      if (member && own.stream) member.group.streams?.closeUp(member, own.id);
      own.stream?.close();
    }
    this.own.clear();
    for (const { tracks } of this.sent.values()) for (const s of tracks.values()) s.send.stop();
    this.sent.clear();
    this.bundle?.close();
  }
}
