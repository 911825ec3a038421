// Atrium as the conference focus (the part Jicofo plays for Jitsi): Jingle
// sessions between an XMPP occupant and the SFU, in terms of the core's
// streams. The focus sits in every room as the occupant `focus`; an XMPP
// client asks for media with Jitsi's conference request. Each Atrium stream
// is one Jingle session: the focus initiates one per stream the occupant
// receives (the SFU's offer as session-initiate, the client's
// session-accept as the answer), and the client initiates one per stream it
// publishes (its offer, answered with session-accept). Candidates trickle
// both ways as transport-info; an ICE restart or a changed down-stream
// comes as transport-replace, answered with transport-accept. Each offer
// also names the occupant's bridge channel (colibri.ts), whose
// ReceiverVideoConstraints choose the layer of each down-stream here.
import { randomBytes } from 'node:crypto';
import type { ReceiverVideoConstraints } from '@atrium/protocol/colibri';
import type { StreamEvent } from '../../core/client.ts';
import { isCoreError } from '../../core/errors.ts';
import type { LayerRequest } from '../../core/vocabulary.ts';
import { BridgeEndpoint } from './colibri.ts';
import { BundleFocus } from './jicofo.ts';
import type { XmppContext } from './context.ts';
import { discoInfo } from './disco.ts';
import type { JingleDescription } from './jingle/model.ts';
import { JingleSdpError, candidateLine, jingleToSdp, sdpToJingle, parseCandidateLine } from './jingle/sdp.ts';
import { JNS, JingleXmlError, appendDescription, candidateElement, readDescription, readTransport } from './jingle/xml.ts';
import type { Occupant, XmppRoom } from './muc.ts';
import type { XmppSession } from './session.ts';
import { NS, StanzaError, conditionOf } from './stanza.ts';
import { type Element, attr, el } from './xml.ts';

export const FOCUS_NICK = 'focus';
/** Atrium's own Jingle extension: the label of a stream and who publishes it. */
export const ATRIUM_JINGLE_NS = 'urn:atrium:jingle:0';

/** The focus's "real" address, as Jitsi clients learn it from the conference request. */
export function focusUserJid(ctx: XmppContext): string {
  return `focus@auth.${ctx.domain}`;
}

/** The presence of the focus in a room, for clients that asked for a conference. */
export function focusPresence(o: Occupant): Element {
  return el('presence', { from: `${o.room.jid}/${FOCUS_NICK}` }, el('x', { xmlns: NS.mucUser }, el('item', { affiliation: 'owner', role: 'moderator', jid: `${focusUserJid(o.session.ctx)}/focus` })));
}

/** Jitsi's conference request (`<conference xmlns='http://jitsi.org/protocol/focus'/>` to focus.<domain>), and disco of the focus. */
export function handleFocusIq(session: XmppSession, iq: Element): void {
  const child = iq.children.find((c): c is Element => typeof c !== 'string')!;
  const type = attr(iq, 'type');
  const ctx = session.ctx;
  const from = ctx.focusDomain;
  if (type === 'get' && child.getNS() === NS.discoInfo) {
    session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from }, discoInfo('focus', ctx)));
    return;
  }
  if (type === 'set' && child.is('conference', NS.focus)) {
    const room = attr(child, 'room') ?? '';
    session.focusRequested = true;
    // Jitsi's clients keep one session for the conference (Jicofo's way);
    // a client that wants one session per stream says so.
    const perStream = child.getChildren('property').some((p) => attr(p, 'name') === 'atrium-jingle' && attr(p, 'value') === 'per-stream');
    session.focusMode = perStream ? 'per-stream' : 'bundle';
    session.send(
      el(
        'iq',
        { type: 'result', id: attr(iq, 'id'), from },
        el(
          'conference',
          { xmlns: NS.focus, room, ready: 'true', focusjid: focusUserJid(ctx) },
          el('property', { name: 'authentication', value: 'false' }),
          el('property', { name: 'sipGatewayEnabled', value: 'false' }),
        ),
      ),
    );
    // Already in the room: media starts now.
    for (const o of session.occupants.values()) o.media.joined();
    return;
  }
  throw new StanzaError('service-unavailable', `the focus takes <conference xmlns="${NS.focus}"/> requests only`);
}

interface JingleSession {
  sid: string;
  /** down: the focus sends the occupant a stream of the group; up: the occupant publishes. */
  dir: 'down' | 'up';
  /** The core's stream id: the publication id for down, the sid for up. */
  stream: string;
  /** The last description sent or received, for content names of candidates. */
  contents: string[];
  /** Down: the media of each offered content (audio, video, application), in the order of `contents`. */
  media?: string[];
  /** Down: names the client's answer gave contents that the offer named otherwise (Jitsi's "audio", "video"), to the offer's names. */
  aliases?: Map<string, string>;
  ended: boolean;
  /** Down: the publisher's member id, and the names of the video sources it carries (what constraints name). */
  owner?: string;
  videoSources?: string[];
  /** Down: the video layer asked for it now. */
  video?: LayerRequest['video'];
}

/** What a receiver asked for on its bridge channel, as the messages so far left it (absent fields keep their value). */
type Constraints = Omit<ReceiverVideoConstraints, 'colibriClass'>;

/** Below this height a video is sent at its lowest layer (Jitsi asks 180 for thumbnails, 360 and more for the stage). */
export const LOW_LAYER_BELOW_HEIGHT = 360;

function layerFor(c: { maxHeight?: number | undefined; idealHeight?: number | undefined } | undefined): LayerRequest['video'] | undefined {
  const h = c?.maxHeight ?? c?.idealHeight;
  if (h === undefined || h < 0) return undefined;
  if (h === 0) return 'none';
  return h < LOW_LAYER_BELOW_HEIGHT ? 'low' : 'high';
}

/**
 * The video layer each received video gets from a receiver's constraints: a
 * source's own constraint (by source name, as current Jitsi clients key
 * them, or by the owner's endpoint id, i.e. its room nick, as older ones
 * do), else the default; with lastN, only the first N publishers (on stage
 * or selected first, then by who spoke last) get video at all.
 */
export function videoChoices(c: Constraints, room: XmppRoom, videos: readonly { owner: string | undefined; names: readonly string[] }[]): LayerRequest['video'][] {
  const lastN = c.lastN ?? -1;
  let allowed: Set<string> | undefined;
  if (lastN >= 0) {
    const wanted = new Set([...(c.onStageSources ?? []), ...(c.selectedSources ?? [])]);
    const endpoints = new Set([...(c.onStageEndpoints ?? []), ...(c.selectedEndpoints ?? [])]);
    const first = videos.filter((v) => v.names.some((n) => wanted.has(n)) || endpoints.has(room.knownNick(v.owner ?? '') ?? '')).map((v) => v.owner);
    const ranked = [...first, ...room.speakers.order, ...videos.map((v) => v.owner)];
    allowed = new Set([...new Set(ranked)].filter((o): o is string => o !== undefined).slice(0, lastN));
  }
  return videos.map((v) => {
    const nick = v.owner === undefined ? undefined : room.knownNick(v.owner);
    const keys = nick === undefined ? v.names : [...v.names, nick];
    const own = keys.map((k) => layerFor(c.constraints?.[k])).find((l) => l !== undefined);
    const video = own ?? layerFor(c.defaultConstraints) ?? 'high';
    return allowed && v.owner !== undefined && !allowed.has(v.owner) ? 'none' : video;
  });
}

function jingleError(condition: StanzaError['condition'], jingleCondition: string | undefined, text: string): StanzaError {
  return new StanzaError(condition, text, jingleCondition ? el(jingleCondition, { xmlns: JNS.errors }) : undefined);
}

/** The Jingle sessions of one occupant. */
export class MediaSessions {
  private readonly sessions = new Map<string, JingleSession>();
  private readonly downs = new Map<string, JingleSession>();
  private started = false;
  /** The bridge channel's side of this occupant, once its client asked for a conference. */
  bridge: BridgeEndpoint | undefined;
  private constraints: Constraints = {};
  /** In Jicofo mode (the default for a conference request), the occupant's one session. */
  jicofo: BundleFocus | undefined;

  constructor(private readonly occupant: Occupant) {}

  private get focusJid(): string {
    return `${this.occupant.room.jid}/${FOCUS_NICK}`;
  }

  /** The occupant is in the room: if its client asked for a conference, it receives the group's streams. */
  joined(): void {
    const member = this.occupant.member;
    if (this.started || !member || !this.occupant.session.focusRequested) return;
    const streams = member.group.streams;
    if (!streams) return;
    this.started = true;
    this.bridge = new BridgeEndpoint(this.occupant);
    this.occupant.session.ctx.bridges.add(this.bridge);
    if (this.occupant.session.focusMode === 'bundle') {
      const bridge = this.bridge;
      const jicofo = new BundleFocus(
        this.occupant,
        this.focusJid,
        () => bridge.url(this.occupant.session.place),
        () => this.applyConstraints(),
      );
      this.jicofo = jicofo;
      jicofo.start().then(
        () => {
          // An engine without bundle sessions: one session per stream, which Jitsi clients take for one stream only.
          if (!jicofo.running && this.jicofo === jicofo) {
            this.jicofo = undefined;
            streams.setRequest(member, { '': { audio: true, video: 'high' } });
          }
        },
        (e) => this.occupant.session.ctx.log.error({ err: e }, 'the Jitsi conference session could not start'),
      );
      return;
    }
    streams.setRequest(member, { '': { audio: true, video: 'high' } });
  }

  /** The occupant leaves: its client is told that every session is over. */
  close(): void {
    this.jicofo?.close();
    this.jicofo = undefined;
    for (const s of this.sessions.values()) if (!s.ended) this.terminate(s, 'gone', 'you left the room');
    this.sessions.clear();
    this.downs.clear();
    if (this.bridge) {
      this.occupant.session.ctx.bridges.remove(this.bridge);
      this.bridge.close('you left the room');
      this.bridge = undefined;
    }
  }

  // ---------------------------------------------------------------------
  // From the bridge channel

  /** A ReceiverVideoConstraints (or a LastNChangedEvent): merged into what was asked before, then applied. */
  setConstraints(c: Constraints): void {
    const merged: Constraints = { ...this.constraints };
    for (const [k, v] of Object.entries(c)) if (v !== undefined && k !== 'colibriClass') (merged as Record<string, unknown>)[k] = v;
    this.constraints = merged;
    this.applyConstraints();
  }

  /**
   * Gives each video the layer the constraints ask for (videoChoices): each
   * down-stream in per-stream mode, each source of the one session in
   * Jicofo mode. Tells the client what is forwarded now.
   */
  private applyConstraints(): void {
    const member = this.occupant.member;
    const streams = member?.group.streams;
    if (!member || !streams) return;
    const room = this.occupant.room;
    if (this.jicofo) {
      // Jicofo mode: each video source of the one session gets its layer (bundle sends switch under the same SSRC).
      const sends = this.jicofo.videoSends();
      const choices = videoChoices(this.constraints, room, sends);
      const forwarded: string[] = [];
      for (const [i, s] of sends.entries()) {
        const video = choices[i]!;
        s.send.setVideo(video);
        if (video !== 'none') forwarded.push(...s.names);
      }
      this.bridge?.send({ colibriClass: 'ForwardedSources', forwardedSources: forwarded });
      return;
    }
    const downs = [...this.downs.values()].filter((s) => !s.ended);
    const choices = videoChoices(
      this.constraints,
      room,
      downs.map((s) => ({ owner: s.owner, names: s.videoSources ?? [] })),
    );
    const forwarded: string[] = [];
    for (const [i, s] of downs.entries()) {
      const video = choices[i]!;
      if (video !== 'none') forwarded.push(...(s.videoSources ?? []));
      if (video === (s.video ?? 'high')) continue;
      try {
        streams.requestStream(member, s.stream, { audio: true, video });
        s.video = video;
      } catch {
        // The down-stream is already gone.
      }
    }
    this.bridge?.send({ colibriClass: 'ForwardedSources', forwardedSources: forwarded });
  }

  // ---------------------------------------------------------------------
  // From the core

  streamEvent(e: StreamEvent): void {
    switch (e.kind) {
      case 'offer':
        return this.offerDown(e.id, e.sdp, e.label, e.source, e.username);
      case 'answer': {
        const s = this.sessions.get(e.id);
        if (s?.dir !== 'up' || s.ended) return;
        this.sendJingle(s, 'session-accept', this.describe(e.sdp, 'responder'));
        return;
      }
      case 'ice': {
        const s = this.downs.get(e.id) ?? this.sessions.get(e.id);
        if (!s || s.ended || !e.candidate.candidate) return;
        let cand;
        try {
          cand = parseCandidateLine(e.candidate.candidate);
        } catch {
          return;
        }
        const name = e.candidate.sdpMid ?? s.contents[e.candidate.sdpMLineIndex ?? 0] ?? s.contents[0];
        if (name === undefined) return;
        const transport = el('transport', { xmlns: JNS.ice, ufrag: e.candidate.usernameFragment ?? undefined }, candidateElement(cand));
        this.sendJingle(s, 'transport-info', undefined, [el('content', { creator: 'initiator', name }, transport)]);
        return;
      }
      case 'close': {
        const s = this.downs.get(e.id);
        if (s && !s.ended) this.terminate(s, 'success', 'the stream ended');
        return;
      }
      case 'abort': {
        const s = this.sessions.get(e.id);
        if (s && s.dir === 'up' && !s.ended) this.terminate(s, 'failed-application', 'the server stopped this stream; publish again if you still want to');
        return;
      }
    }
  }

  private describe(sdp: string, author: 'initiator' | 'responder'): JingleDescription {
    return sdpToJingle(sdp, { author, creator: 'initiator', names: 'mid' });
  }

  private offerDown(id: string, sdp: string, label: string, source: string, username: string | undefined): void {
    const room = this.occupant.room;
    const nick = room.nickOf(source, username);
    const owner = `${room.jid}/${nick}`;
    const ordinal = room.streamOrdinal(source, id);
    let desc: JingleDescription;
    try {
      desc = this.describe(sdp, 'initiator');
    } catch (e) {
      this.occupant.session.ctx.log.error({ err: e }, 'the SFU offer could not be put into Jingle');
      return;
    }
    // Jitsi names each source after its owner and kind: <endpoint>-a0, <endpoint>-v0
    // (the owner's second stream -a1, -v1), the same for every receiver.
    const counters = { audio: 0, video: 0 };
    const videoSources: string[] = [];
    const bridgeUrl = this.bridge?.url(this.occupant.session.place);
    for (const c of desc.contents) {
      if (bridgeUrl) c.transport.webSocket = bridgeUrl;
      if (!c.rtp) continue;
      const kind = c.rtp.media;
      const n = counters[kind]++;
      for (const s of c.rtp.sources) {
        s.owner = owner;
        s.name ??= `${nick}-${kind[0]}${ordinal}${n > 0 ? `.${n}` : ''}`;
        if (kind === 'video' && !videoSources.includes(s.name)) videoSources.push(s.name);
      }
    }
    const extra = el('stream', { xmlns: ATRIUM_JINGLE_NS, id, label, owner, username });
    const existing = this.downs.get(id);
    if (existing && !existing.ended) {
      existing.contents = desc.contents.map((c) => c.name);
      existing.media = desc.contents.map(mediaOf);
      existing.videoSources = videoSources;
      this.sendJingle(existing, 'transport-replace', desc, [extra]);
      return;
    }
    const s: JingleSession = {
      sid: randomBytes(8).toString('hex'),
      dir: 'down',
      stream: id,
      contents: desc.contents.map((c) => c.name),
      media: desc.contents.map(mediaOf),
      ended: false,
      owner: source,
      videoSources,
    };
    this.sessions.set(s.sid, s);
    this.downs.set(id, s);
    this.sendJingle(s, 'session-initiate', desc, [extra]);
    // What the bridge channel asked for so far applies to the new stream too.
    if (Object.keys(this.constraints).length > 0) this.applyConstraints();
  }

  private sendJingle(s: JingleSession, action: string, desc: JingleDescription | undefined, extra: Element[] = []): void {
    const session = this.occupant.session;
    const jingle = el('jingle', {
      xmlns: JNS.jingle,
      action,
      sid: s.sid,
      initiator: s.dir === 'down' ? this.focusJid : this.occupant.occupantJid,
      responder: action === 'session-accept' ? this.focusJid : undefined,
    });
    if (desc) appendDescription(jingle, desc);
    for (const x of extra) jingle.cnode(x);
    const iq = el('iq', { type: 'set', from: this.focusJid }, jingle);
    void session.request(iq).then((reply) => {
      if (attr(reply, 'type') !== 'error' || s.ended) return;
      // The client refused what we sent: that stream is over for it.
      if (action === 'session-initiate' || action === 'transport-replace') this.abandon(s);
    });
  }

  private terminate(s: JingleSession, reason: string, text: string): void {
    s.ended = true;
    this.forget(s);
    const session = this.occupant.session;
    const jingle = el('jingle', { xmlns: JNS.jingle, action: 'session-terminate', sid: s.sid }, el('reason', {}, el(reason), el('text', {}, text)));
    void session.request(el('iq', { type: 'set', from: this.focusJid }, jingle));
  }

  private forget(s: JingleSession): void {
    if (this.sessions.get(s.sid) === s) this.sessions.delete(s.sid);
    if (s.dir === 'down' && this.downs.get(s.stream) === s) this.downs.delete(s.stream);
  }

  /** The client will not take a down-stream: the core stops sending it. */
  private abandon(s: JingleSession): void {
    s.ended = true;
    this.forget(s);
    const member = this.occupant.member;
    try {
      if (member && s.dir === 'down') member.group.streams?.abort(member, s.stream);
    } catch {
      // Already gone.
    }
  }

  // ---------------------------------------------------------------------
  // From the client

  /** A Jingle IQ (or another request) from the occupant to the focus. */
  async handleIq(iq: Element, child: Element): Promise<void> {
    const session = this.occupant.session;
    const ack = () => session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from: this.focusJid }));
    if (attr(iq, 'type') === 'get' && child.getNS() === NS.discoInfo) {
      session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from: this.focusJid }, discoInfo('focus', session.ctx)));
      return;
    }
    if (attr(iq, 'type') !== 'set' || !child.is('jingle', JNS.jingle)) {
      throw new StanzaError('service-unavailable', `the focus takes Jingle (${JNS.jingle}) requests only`);
    }
    const member = this.occupant.member!;
    const streams = member.group.streams;
    if (!streams) throw new StanzaError('service-unavailable', 'this server runs without a media engine: no Jingle sessions');
    const action = attr(child, 'action');
    const sid = attr(child, 'sid');
    if (!sid || sid.length > 128 || !/^[\x21-\x7e]+$/.test(sid)) throw jingleError('bad-request', undefined, 'a Jingle request needs a sid of printable characters');
    if (this.jicofo && sid === this.jicofo.sid) return this.jicofo.handle(iq, child, action);
    const s = this.sessions.get(sid);
    try {
      switch (action) {
        case 'session-initiate': {
          if (s) throw jingleError('bad-request', 'out-of-order', `session "${sid}" already exists`);
          const desc = readDescription(child);
          if (!desc.contents.some((c) => c.rtp)) throw jingleError('bad-request', undefined, 'a session-initiate to the focus publishes audio or video');
          const sdp = jingleToSdp(desc, { author: 'initiator' });
          const up: JingleSession = { sid, dir: 'up', stream: sid, contents: desc.contents.map((c) => c.name), ended: false };
          this.sessions.set(sid, up);
          ack();
          await streams.offer(member, { id: sid, label: labelOf(child), sdp }).catch((e) => {
            if (!up.ended) this.terminate(up, 'failed-application', isCoreError(e) ? e.message : 'the server could not use this offer');
          });
          return;
        }
        case 'session-accept':
        case 'transport-accept': {
          if (s?.dir !== 'down') throw jingleError('item-not-found', 'unknown-session', `there is no session "${sid}" offered to you`);
          const desc = readDescription(child);
          // A down-stream flows from the focus to the client only, and an
          // answer's senders cannot be read as XEP-0167 says: lib-jitsi-meet
          // writes directions as if its SDP were the initiator's (its
          // SDP.toJingle turns a=recvonly into senders="responder"), which
          // read literally would make the SFU stop sending. So any content
          // the client did not refuse (none, rejected) is one it receives.
          for (const c of desc.contents) if (c.rtp && !c.rejected && c.senders !== 'none') c.senders = 'initiator';
          alignNames(s, desc);
          const sdp = jingleToSdp(desc, { author: 'responder' });
          ack();
          await streams.answer(member, s.stream, sdp).catch((e) => {
            session.ctx.log.debug({ err: e }, 'a Jingle answer was refused');
            this.abandon(s);
            this.terminate(s, 'failed-application', isCoreError(e) ? e.message : 'the answer could not be used');
          });
          return;
        }
        case 'transport-info': {
          if (!s) throw jingleError('item-not-found', 'unknown-session', `there is no session "${sid}"`);
          const jobs: Promise<void>[] = [];
          for (const content of child.getChildren('content')) {
            const given = attr(content, 'name') ?? s.contents[0] ?? '0';
            const name = s.aliases?.get(given) ?? given;
            const t = readTransport(content.getChild('transport', JNS.ice), `content "${name}"`);
            for (const c of t.candidates)
              jobs.push(streams.candidate(member, s.stream, { candidate: candidateLine(c), sdpMid: name, sdpMLineIndex: Math.max(0, s.contents.indexOf(name)), usernameFragment: t.ufrag ?? null }));
          }
          ack();
          await Promise.all(jobs).catch(() => undefined);
          return;
        }
        case 'session-terminate': {
          ack();
          if (!s) return;
          s.ended = true;
          this.forget(s);
          if (s.dir === 'up') streams.closeUp(member, s.stream);
          else {
            try {
              streams.abort(member, s.stream);
            } catch {
              // Ended on both sides at once.
            }
          }
          return;
        }
        case 'session-info':
          if (!s) throw jingleError('item-not-found', 'unknown-session', `there is no session "${sid}"`);
          return ack();
        case 'source-add':
        case 'source-remove':
        case 'content-add':
        case 'content-modify':
        case 'content-remove':
          throw jingleError(
            'feature-not-implemented',
            'unsupported-info',
            `"${action}" is not supported here: each Atrium stream is its own Jingle session; start another session (session-initiate) for a new stream`,
          );
        default:
          throw jingleError('feature-not-implemented', 'unsupported-info', `unknown Jingle action "${action ?? ''}"`);
      }
    } catch (e) {
      if (e instanceof JingleXmlError || e instanceof JingleSdpError) throw jingleError('bad-request', undefined, e.message);
      if (isCoreError(e)) throw new StanzaError(conditionOf(e.code), e.message);
      throw e;
    }
  }
}

function mediaOf(c: JingleDescription['contents'][number]): string {
  return c.rtp?.media ?? 'application';
}

/**
 * Puts the content names of a client's answer back to the ones the focus
 * offered, and its contents in the offer's order. lib-jitsi-meet names the
 * contents of its session-accept by media type ("audio", "video", as
 * Jicofo's offers do) whatever the offer called them; an answer whose names
 * are not the offer's gets, for each such content, the first offered
 * content of the same media not answered yet. The names are kept for the
 * candidates (transport-info) that use them later.
 */
function alignNames(s: JingleSession, desc: JingleDescription): void {
  const offered = s.contents;
  const media = s.media ?? [];
  const answered = new Set(desc.contents.map((c) => c.name).filter((n) => offered.includes(n)));
  const aliases = s.aliases ?? new Map<string, string>();
  for (const c of desc.contents) {
    if (offered.includes(c.name)) continue;
    const i = offered.findIndex((n, k) => !answered.has(n) && media[k] === mediaOf(c));
    if (i < 0) continue;
    answered.add(offered[i]!);
    aliases.set(c.name, offered[i]!);
    c.name = offered[i]!;
  }
  if (aliases.size === 0) return;
  s.aliases = aliases;
  if (desc.bundle) desc.bundle = desc.bundle.map((n) => aliases.get(n) ?? n);
  const rank = (name: string) => {
    const i = offered.indexOf(name);
    return i < 0 ? offered.length : i;
  };
  desc.contents.sort((a, b) => rank(a.name) - rank(b.name));
}

/** The label of a published stream: Atrium's <stream label/>, else screenshare for a desktop source, else camera. */
function labelOf(jingle: Element): string {
  const mine = jingle.getChild('stream', ATRIUM_JINGLE_NS);
  const label = mine ? attr(mine, 'label') : undefined;
  if (label) return label;
  for (const c of jingle.getChildren('content')) {
    for (const s of c.getChild('description', JNS.rtp)?.getChildren('source', JNS.ssma) ?? []) if (attr(s, 'videoType') === 'desktop') return 'screenshare';
  }
  return 'camera';
}

export { readTransport };
