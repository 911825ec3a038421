// The Colibri-style bridge channel, as Jitsi's videobridge offers it: a
// WebSocket per conference participant, at the URL the focus puts in its
// Jingle offers (<web-socket xmlns="http://jitsi.org/protocol/colibri"
// url="wss://…/colibri-ws/atrium/<group>/<endpoint>?pwd=…"/>), carrying
// JSON messages named by `colibriClass` (@atrium/protocol/colibri).
//
// - ServerHello when the channel opens.
// - EndpointMessage: to one endpoint or to everyone else in the group. It
//   goes through the core as a user message of kind "endpoint-message", so
//   Galène-protocol members receive it too (and theirs reach XMPP clients).
// - DominantSpeakerEndpointChangeEvent: the member whose audio (RFC 6464
//   levels of the up-streams) is loudest, by room nick, to every channel in
//   the group (SpeakerWatch).
// - ReceiverVideoConstraints (and LastNChangedEvent): which videos the
//   client wants at which height; each drives the layer choice of that
//   down-stream, or in Jicofo mode of that source of the one bundle session
//   (MediaSessions.applyConstraints in focus.ts), answered with
//   ForwardedSources.
//
// A channel is a connection of the dialect kit (rate limits, frame size,
// bounded output, liveness); it is in its group from the start, and ends
// when its occupant leaves the room. A refused message is answered with
// Atrium's own {colibriClass: "Error"} (clients ignore classes they do not
// know); a class this server does not know is ignored, as Jitsi's bridge does.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { type ClientMessage, COLIBRI_LIMITS, type ServerMessage, parseClientMessage } from '@atrium/protocol/colibri';
import type { CoreEvent } from '../../core/client.ts';
import type { ErrorCode } from '../../core/vocabulary.ts';
import type { Place } from '../../http/place.ts';
import { CLOSE, type DialectContext, DialectConnection, type Parsed, type Transport, type WsFrame, jsonFrame } from '../kit/index.ts';
import type { Occupant, XmppRoom } from './muc.ts';

/** Where bridge channels are: /colibri-ws/<server id>/<group>/<endpoint>?pwd=<secret>, as Jitsi's bridge has them. */
export const COLIBRI_PATH = '/colibri-ws';
export const COLIBRI_SERVER_ID = 'atrium';
export const COLIBRI_DIALECT = 'xmpp-colibri';

/** Messages a channel may sustain. */
export const COLIBRI_RATES = { messagesPerSecond: 50, messageBurst: 100, closeAfterRefusedPerSecond: 200 };

/** Kind of the core user message an EndpointMessage travels as. */
export const ENDPOINT_MESSAGE_KIND = 'endpoint-message';

/** The bridge side of one occupant: the secret of its URL and the channel open now (one at a time). */
export class BridgeEndpoint {
  readonly secret = randomBytes(18).toString('base64url');
  channel: BridgeChannel | undefined;

  constructor(readonly occupant: Occupant) {}

  /** The URL the client opens, on the origin it reached the server by. */
  url(place: Place): string {
    const base = place.base.replace(/^http/, 'ws');
    return `${base}${COLIBRI_PATH}/${COLIBRI_SERVER_ID}/${encodeURIComponent(this.occupant.room.group)}/${this.occupant.id}?pwd=${this.secret}`;
  }

  /** Whether a request's pwd is this endpoint's (in constant time). */
  accepts(pwd: string): boolean {
    const a = Buffer.from(pwd);
    const b = Buffer.from(this.secret);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  send(msg: ServerMessage): void {
    this.channel?.sendMessage(msg);
  }

  /** The occupant left: its channel ends, and its URL with it. */
  close(reason: string): void {
    this.channel?.end(reason);
    this.channel = undefined;
  }
}

/** The endpoints of the dialect, by occupant id (the last segment of a channel's URL). */
export class BridgeDirectory {
  private readonly byId = new Map<string, BridgeEndpoint>();

  add(e: BridgeEndpoint): void {
    this.byId.set(e.occupant.id, e);
  }

  remove(e: BridgeEndpoint): void {
    if (this.byId.get(e.occupant.id) === e) this.byId.delete(e.occupant.id);
  }

  /** The endpoint a channel request is for, if group, id and secret all match. */
  find(group: string, id: string, pwd: string): BridgeEndpoint | undefined {
    const e = this.byId.get(id);
    return e && e.occupant.room.group === group && e.accepts(pwd) ? e : undefined;
  }
}

type Msg = ClientMessage | { colibriClass: string; unknown: true };

/** One open bridge channel. */
export class BridgeChannel extends DialectConnection<Msg, WsFrame> {
  readonly id = randomBytes(12).toString('base64url');

  constructor(
    transport: Transport<string, WsFrame>,
    ctx: DialectContext,
    private readonly endpoint: BridgeEndpoint,
  ) {
    super(transport, ctx, { dialect: COLIBRI_DIALECT, rates: COLIBRI_RATES, maxFrameBytes: COLIBRI_LIMITS.frameBytes, tellTooLarge: true });
    // The channel belongs to an occupant of a group: the join timeout does not apply.
    this.setJoined(true);
    const old = endpoint.channel;
    endpoint.channel = this;
    old?.end('another bridge channel was opened for this endpoint');
    this.sendMessage({ colibriClass: 'ServerHello', version: 'atrium-1' });
    endpoint.occupant.room.speakers.channelOpened(endpoint);
  }

  sendMessage(msg: ServerMessage): void {
    this.send(JSON.stringify(msg));
  }

  /** Closes the channel for a reason of ours. */
  end(reason: string): void {
    this.close(CLOSE.normal, reason);
  }

  protected parse(input: WsFrame): Parsed<Msg> {
    const json = jsonFrame(input, { protocol: 'the bridge channel', jsonHint: 'a JSON object with a "colibriClass"' });
    if (!json.ok) return json;
    const r = parseClientMessage(json.value);
    if (!r.ok) return { ok: false, error: 'bad-message', message: r.message };
    if (r.message === undefined) return { ok: true, message: { colibriClass: r.colibriClass, unknown: true }, type: 'other' };
    return { ok: true, message: r.message, type: r.message.colibriClass };
  }

  protected handle(msg: Msg): void {
    if ('unknown' in msg) return;
    const occupant = this.endpoint.occupant;
    switch (msg.colibriClass) {
      case 'EndpointMessage':
        return sendEndpointMessage(occupant, msg.to ?? '', msg.msgPayload);
      case 'ReceiverVideoConstraints':
        return occupant.media.setConstraints(msg);
      case 'LastNChangedEvent':
        return occupant.media.setConstraints({ lastN: msg.lastN });
      default:
        return;
    }
  }

  protected renderError(code: ErrorCode, message: string): string {
    return JSON.stringify({ colibriClass: 'Error', error: code, message } satisfies ServerMessage);
  }

  /** The channel is no member of its own: the occupant is (see Occupant). */
  deliver(_event: CoreEvent): void {}

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.close(why === 'shutdown' ? CLOSE.goingAway : CLOSE.normal, reason);
  }

  protected override onClosed(): void {
    if (this.endpoint.channel === this) this.endpoint.channel = undefined;
    this.endpoint.occupant.room.speakers.channelClosed();
  }
}

/** An EndpointMessage from an occupant's channel: through the core, to one member (by nick) or to all the others. */
function sendEndpointMessage(from: Occupant, to: string, payload: unknown): void {
  const member = from.member;
  if (!member) return;
  let dest: string | undefined;
  if (to !== '') {
    dest = from.room.idOf(to);
    if (dest === undefined || member.group.member(dest) === undefined) {
      from.media.bridge?.send({ colibriClass: 'Error', error: 'no-such-user', message: `there is no endpoint "${to}" in this conference` });
      return;
    }
  }
  member.group.relay(member, { kind: ENDPOINT_MESSAGE_KIND, dest, value: payload, noecho: true });
}

/** How loud (0..1, linear) a member must be to count as speaking. */
export const SPEAKING_LEVEL = 0.01;
/** How often the levels are read while a channel is open in the group. */
export const SPEAKER_POLL_MS = 400;
/** A new dominant speaker stays at least this long before another takes over. */
export const SPEAKER_HOLD_MS = 1000;

/**
 * The dominant speaker of one room, while at least one bridge channel is
 * open in it: the member whose up-stream audio is loudest, told to every
 * channel when it changes (with the previous speakers, most recent first).
 */
export class SpeakerWatch {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** Member ids: the dominant speaker first, then those before it. */
  private speakers: string[] = [];
  private since = 0;

  constructor(private readonly room: XmppRoom) {}

  /** Member ids, the dominant speaker first (lastN ranks videos by it). */
  get order(): readonly string[] {
    return this.speakers;
  }

  channelOpened(e: BridgeEndpoint): void {
    if (this.speakers.length > 0) e.send(this.event());
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.poll(), SPEAKER_POLL_MS);
      this.timer.unref();
    }
  }

  channelClosed(): void {
    if ([...this.room.occupants].some((o) => o.media.bridge?.channel)) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    const group = [...this.room.occupants].find((o) => o.member)?.member?.group;
    const streams = group?.streams;
    if (!group || !streams) return;
    this.polling = true;
    let levels: Map<string, number>;
    try {
      levels = await streams.audioLevels();
    } finally {
      this.polling = false;
    }
    let loudest: string | undefined;
    let best = SPEAKING_LEVEL;
    for (const [id, level] of levels) {
      if (level > best) {
        best = level;
        loudest = id;
      }
    }
    const now = performance.now();
    if (loudest === undefined || loudest === this.speakers[0] || now - this.since < SPEAKER_HOLD_MS) return;
    this.speakers = [loudest, ...this.speakers.filter((s) => s !== loudest && group.member(s))].slice(0, 16);
    this.since = now;
    const event = this.event();
    for (const o of this.room.occupants) o.media.bridge?.send(event);
  }

  private event(): ServerMessage {
    const nick = (id: string) => this.room.nickOf(id, [...this.room.occupants].find((o) => o.member)?.member?.group.member(id)?.username);
    const [first, ...rest] = this.speakers;
    return { colibriClass: 'DominantSpeakerEndpointChangeEvent', dominantSpeakerEndpoint: nick(first!), previousSpeakers: rest.map(nick) };
  }
}
