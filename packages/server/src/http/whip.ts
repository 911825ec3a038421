// WHIP (RFC 9725) ingest at /group/<name>/.whip and WHEP playback at
// /group/<name>/.whep. Each session is a core Client in the group, as in
// Galène: a WHIP publisher is a member with one stream (everyone sees it in
// the user list and receives its stream as any other), a WHEP player a
// member that receives one stream — the one named by `?stream=<id>` (or
// "<owner>/<id>"), else the group's active one.
//
//   POST   <endpoint>             offer → 201, Location, ETag, the answer
//   PATCH  <endpoint>/<resource>  trickle ICE (204) or ICE restart (If-Match: *, 200 + fragment)
//   DELETE <endpoint>/<resource>  ends the session (200); 404 once it is gone
//   OPTIONS                       methods, accepted types, ICE servers as Link headers
//
// WHIP needs `Authorization: Bearer <token>` (a JWT of the group's authKeys
// or a stateful token) giving `present`; WHEP is authenticated like a join
// (bearer token, HTTP Basic with a user of the group file, or nothing when
// the group lets anybody in). A session's resource URL is unguessable, and
// PATCH and DELETE must bring the credentials its POST brought.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Client, CoreEvent, IceServerInfo } from '../core/client.ts';
import { type ErrorCode, isCoreError, retryAfterHeader } from '../core/errors.ts';
import type { Member } from '../core/group.ts';
import type { Registry } from '../core/registry.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { type PlaceOptions, placeFor } from './place.ts';
import { parseAuthorization } from './recordings.ts';
import { SdpFragmentError, answerFragment, iceUfrag, parseSdpFragment, restartOffer } from './sdpfrag.ts';

type Protocol = 'whip' | 'whep';

export interface HttpMediaDeps {
  registry: Registry;
  metrics: Metrics;
  place: () => PlaceOptions;
  log: Logger;
  /** The address a request came from, for throttling failed logins. */
  address: (req: FastifyRequest) => string | undefined;
}

const SDP = 'application/sdp';
const FRAG = 'application/trickle-ice-sdpfrag';
const SDP_LIMIT = 1024 * 1024;

/** Why a request is refused: an HTTP status and a sentence. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The HTTP status of a refused join. */
function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'not-authorised':
    case 'need-username':
      return 401;
    case 'no-such-group':
      return 404;
    case 'bad-message':
      return 400;
    case 'too-many-clients':
      return 503;
    case 'not-supported':
      return 501;
    case 'rate-limited':
      // Too many failed logins: wait, as Retry-After says (the admin API and the recordings page answer the same).
      return 429;
    default:
      return 403;
  }
}

const newTag = () => `"${randomBytes(12).toString('base64url')}"`;
const digest = (s: string) => createHash('sha256').update(s).digest();

/** One WHIP or WHEP session: a member of its group. */
class HttpMediaSession implements Client {
  readonly id = randomBytes(12).toString('base64url');
  readonly resource = randomBytes(16).toString('base64url');
  readonly kind: Protocol;
  etag = newTag();
  member: Member | undefined;
  /** The stream: the publisher's (WHIP) or the one played (WHEP). */
  streamId: string;
  /** The subscriber's or publisher's last offer, the base of an ICE restart. */
  offer = '';
  #answers: ((sdp: string) => void)[] = [];
  #closed = false;

  constructor(
    kind: Protocol,
    readonly group: string,
    /** A digest of the Authorization header of the POST ('' when none). */
    readonly credentials: Buffer,
    private readonly onEnd: (s: HttpMediaSession, why: string) => void,
  ) {
    this.kind = kind;
    this.streamId = kind === 'whip' ? randomBytes(8).toString('hex') : '';
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The answer the core delivers for our next offer (WHIP). */
  nextAnswer(): Promise<string> {
    return new Promise((resolve) => this.#answers.push(resolve));
  }

  deliver(event: CoreEvent): void {
    if (event.type === 'stream') {
      if (event.kind === 'answer' && event.id === this.streamId) this.#answers.shift()?.(event.sdp);
      // the server dropped our stream (ICE failed, a media worker died, `present` was taken) or the one we play ended
      else if ((event.kind === 'abort' && this.kind === 'whip' && event.id === this.streamId) || (event.kind === 'close' && this.kind === 'whep' && event.id === this.streamId)) {
        this.end(event.kind === 'abort' ? 'the server closed the stream' : 'the stream played ended');
      }
      // our candidates are in the answer already: late ones have nowhere to go over WHIP/WHEP
    } else if (event.type === 'joined' && event.kind === 'leave') {
      this.end('removed from the group');
    }
  }

  terminate(reason: string): void {
    this.member = undefined; // the group removed us already
    this.end(reason);
  }

  /** Ends the session: leaves the group (which closes its streams). */
  end(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const member = this.member;
    this.member = undefined;
    if (member) member.group.remove(member, { notify: false });
    this.onEnd(this, why);
  }
}

export interface HttpMediaRoutes {
  /** Live sessions, for diagnostics. */
  sessions(): { protocol: Protocol; group: string; id: string }[];
  closeAll(reason: string): void;
}

export async function registerWhipWhep(app: FastifyInstance, deps: HttpMediaDeps): Promise<HttpMediaRoutes> {
  const sessions = new Map<string, HttpMediaSession>();
  const m = deps.metrics.sessions;

  const ended = (s: HttpMediaSession, why: string) => {
    if (sessions.get(s.resource) !== s) return;
    sessions.delete(s.resource);
    m.active.dec({ protocol: s.kind });
    deps.log.info({ protocol: s.kind, group: s.group, client: s.id, why }, `${s.kind.toUpperCase()} session ended`);
  };

  function linkHeaders(servers: IceServerInfo[]): string[] {
    const quote = (v: string) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
    const links: string[] = [];
    for (const s of servers) {
      for (const url of Array.isArray(s.urls) ? s.urls : [s.urls]) {
        if (/^stuns?:/i.test(url)) links.push(`<${url}>; rel="ice-server"`);
        else if (/^turns?:/i.test(url) && s.username !== undefined && s.credential !== undefined)
          links.push(`<${url}>; rel="ice-server"; username=${quote(s.username)}; credential=${quote(s.credential)}; credential-type="password"`);
      }
    }
    return links;
  }

  /** /group/<name>/.whip[/<resource>] → its parts, or undefined when the path is not ours. */
  function parsePath(url: string): { protocol: Protocol; group: string; resource: string | undefined } | undefined {
    const path = new URL(url, 'http://x').pathname;
    const match = /^\/group\/(.+)\/\.(whip|whep)(?:\/([^/]+))?\/?$/.exec(path);
    if (!match) return undefined;
    let group: string;
    try {
      group = match[1]!.split('/').map(decodeURIComponent).join('/');
    } catch {
      throw new Refusal(400, 'the group name in the URL is not valid percent-encoding');
    }
    return { protocol: match[2] as Protocol, group, resource: match[3] };
  }

  function body(req: FastifyRequest, type: string): string {
    const got = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (got !== type) throw new Refusal(415, `send the body as ${type}${got ? `, not ${got}` : ''}`, { accept: type, 'accept-patch': FRAG });
    const b = req.body;
    if (typeof b !== 'string' || b.length === 0) throw new Refusal(400, `the body is empty: send an ${type === SDP ? 'SDP offer' : 'SDP fragment'}`);
    return b;
  }

  async function create(req: FastifyRequest, reply: FastifyReply, protocol: Protocol, group: string): Promise<FastifyReply> {
    const offer = body(req, SDP);
    if (!/^v=0\r?\n/.test(offer)) throw new Refusal(400, 'the body is not an SDP offer (it does not start with v=0)');
    if (!deps.registry.describe(group)) throw new Refusal(404, `there is no group called "${group}" on this server`);
    const creds = parseAuthorization(req.headers.authorization);
    if (protocol === 'whip' && !creds?.token) {
      throw new Refusal(401, 'WHIP needs a token with the "present" permission: Authorization: Bearer <token>', { 'www-authenticate': 'Bearer' });
    }
    const place = placeFor(req.headers.host, deps.place());
    const session = new HttpMediaSession(protocol, group, req.headers.authorization ? digest(req.headers.authorization) : Buffer.alloc(0), ended);
    let member: Member;
    try {
      const outcome = await deps.registry.join(session, {
        group,
        groupUrl: place.groupUrl(group),
        // Galène names a WHIP publisher "whip" when its token names nobody
        username: creds?.username ?? (protocol === 'whip' ? 'whip' : undefined),
        password: creds?.password,
        token: creds?.token,
        address: deps.address(req),
        via: protocol,
      });
      if (outcome.kind === 'redirect') throw new Refusal(307, `group "${group}" has moved to ${outcome.url}`, { location: outcome.url });
      // In a cluster: the node that holds the group takes the session (an HTTP client follows a 307 with its body).
      if (outcome.kind === 'elsewhere') throw new Refusal(307, `group "${group}" is served by node "${outcome.node.id}" of the cluster`, { location: `${outcome.node.publicUrl}${req.url}` });
      member = outcome.member;
    } catch (e) {
      if (isCoreError(e)) {
        const status = statusOf(e.code);
        // A Bearer challenge even where WHEP takes Basic too: a Basic one makes a
        // browser open its login dialog over the page of a WHEP player using fetch.
        throw new Refusal(status, e.message, status === 401 ? { 'www-authenticate': `Bearer realm="${group.replace(/["\\]/g, '')}"` } : retryAfterHeader(e));
      }
      throw e;
    }
    session.member = member;
    const streams = member.group.streams;
    try {
      if (!streams) throw new Refusal(501, 'this server runs without a media engine');
      let answer: string;
      if (protocol === 'whip') {
        if (!member.has('present')) throw new Refusal(403, `this token does not give the "present" permission in group "${group}"`);
        const answered = session.nextAnswer();
        await streams.offer(member, { id: session.streamId, label: 'camera', sdp: offer });
        answer = await answered;
      } else {
        const wanted = (req.query as Record<string, string | undefined>).stream;
        if (!streams.findPublication(wanted)) {
          throw new Refusal(404, wanted === undefined ? `nobody publishes in group "${group}" now: try again once someone does` : `group "${group}" has no stream "${wanted}"`);
        }
        const r = await streams.answerSubscriber(member, offer, wanted);
        session.streamId = r.id;
        answer = r.sdp;
      }
      session.offer = offer;
      sessions.set(session.resource, session);
      m.active.inc({ protocol });
      m.total.inc({ protocol });
      deps.log.info({ protocol, group, client: session.id, username: member.username, stream: session.streamId }, `${protocol.toUpperCase()} session started`);
      const location = `/group/${group.split('/').map(encodeURIComponent).join('/')}/.${protocol}/${session.resource}`;
      const links = linkHeaders(member.group.iceServersFor(member));
      if (links.length > 0) reply.header('link', links);
      return reply.code(201).header('location', location).header('etag', session.etag).header('access-control-expose-headers', 'Location, ETag, Link').type(SDP).send(answer);
    } catch (e) {
      session.end('its offer was refused');
      if (isCoreError(e)) throw new Refusal(statusOf(e.code), e.message);
      throw e;
    }
  }

  function sessionFor(req: FastifyRequest, protocol: Protocol, group: string, resource: string): HttpMediaSession {
    const s = sessions.get(resource);
    if (!s || s.closed || s.kind !== protocol || s.group !== group) throw new Refusal(404, `there is no ${protocol.toUpperCase()} session here (it ended, or never was)`);
    const given = req.headers.authorization ? digest(req.headers.authorization) : Buffer.alloc(0);
    if (s.credentials.length > 0 && (given.length !== s.credentials.length || !timingSafeEqual(given, s.credentials))) {
      throw new Refusal(given.length === 0 ? 401 : 403, 'bring the credentials (Authorization header) the session was created with');
    }
    return s;
  }

  /** If-Match: the session's current ETag, or "*" (an ICE restart); an absent one is let through, as the client may not know it. */
  function checkIfMatch(req: FastifyRequest, s: HttpMediaSession): 'none' | 'any' | 'tag' {
    const h = req.headers['if-match'];
    if (h === undefined) return 'none';
    if (h.trim() === '*') return 'any';
    const tags = h.split(',').map((t) => t.trim());
    if (!tags.includes(s.etag)) throw new Refusal(412, `If-Match ${h} is not this session's entity tag; its current one came with the last POST or ICE restart`);
    return 'tag';
  }

  async function patch(req: FastifyRequest, reply: FastifyReply, s: HttpMediaSession): Promise<FastifyReply> {
    const condition = checkIfMatch(req, s);
    let frag: ReturnType<typeof parseSdpFragment>;
    try {
      frag = parseSdpFragment(body(req, FRAG));
    } catch (e) {
      if (e instanceof SdpFragmentError) throw new Refusal(400, `the SDP fragment is malformed: ${e.message}`);
      throw e;
    }
    const member = s.member;
    const streams = member?.group.streams;
    if (!member || !streams) throw new Refusal(404, 'the session has ended');
    const restart = frag.ufrag !== undefined && frag.ufrag !== iceUfrag(s.offer);
    if (condition === 'any' && !restart) throw new Refusal(400, 'If-Match: * asks for an ICE restart, but the fragment keeps the old ice-ufrag: send new ice-ufrag and ice-pwd');
    if (restart) {
      const offer = restartOffer(s.offer, frag);
      let answer: string;
      if (s.kind === 'whip') {
        const answered = s.nextAnswer();
        await streams.offer(member, { id: s.streamId, label: 'camera', sdp: offer });
        answer = await answered;
      } else {
        answer = await streams.reanswerSubscriber(member, s.streamId, offer);
      }
      s.offer = offer;
      s.etag = newTag();
      deps.log.info({ protocol: s.kind, group: s.group, client: s.id }, `${s.kind.toUpperCase()} ICE restart`);
      return reply.code(200).header('etag', s.etag).type(FRAG).send(answerFragment(answer));
    }
    for (const c of frag.candidates) await streams.candidate(member, s.streamId, { candidate: c.candidate, sdpMid: c.mid ?? null });
    return reply.code(204).send();
  }

  await app.register(async (scope) => {
    scope.addContentTypeParser([SDP, FRAG], { parseAs: 'string', bodyLimit: SDP_LIMIT }, (_req, b, done) => done(null, b));
    // any other type reaches the handler as is, to be refused with 415
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: SDP_LIMIT }, (_req, b, done) => done(null, b));
    scope.route({
      method: ['POST', 'PATCH', 'DELETE', 'OPTIONS'],
      url: '/group/*',
      handler: async (req, reply) => {
        let protocol: Protocol = 'whip';
        try {
          const where = parsePath(req.url);
          if (!where) throw new Refusal(404, 'not found: WHIP is at /group/<name>/.whip, WHEP at /group/<name>/.whep');
          protocol = where.protocol;
          const { group, resource } = where;
          if (resource === undefined) {
            if (req.method === 'OPTIONS') {
              const desc = deps.registry.describe(group);
              if (!desc) throw new Refusal(404, `there is no group called "${group}" on this server`);
              return reply.code(204).header('allow', 'OPTIONS, POST').header('accept-post', SDP).send();
            }
            if (req.method !== 'POST') throw new Refusal(405, `the ${protocol.toUpperCase()} endpoint takes POST (an offer) and OPTIONS`, { allow: 'OPTIONS, POST' });
            return await create(req, reply, protocol, group);
          }
          if (req.method === 'OPTIONS') return reply.code(204).header('allow', 'OPTIONS, PATCH, DELETE').header('accept-patch', FRAG).send();
          if (req.method === 'POST') throw new Refusal(405, `a ${protocol.toUpperCase()} session takes PATCH (trickle ICE, ICE restart) and DELETE`, { allow: 'OPTIONS, PATCH, DELETE' });
          const s = sessionFor(req, protocol, group, resource);
          if (req.method === 'DELETE') {
            checkIfMatch(req, s);
            s.end('DELETE');
            return reply.code(200).send();
          }
          return await patch(req, reply, s);
        } catch (e) {
          const status = e instanceof Refusal ? e.status : isCoreError(e) ? statusOf(e.code) : 500;
          if (status >= 500 && !(e instanceof Refusal)) deps.log.error({ err: e, url: req.url }, `${protocol.toUpperCase()}: internal error`);
          m.refused.inc({ protocol, status: String(status) });
          if (e instanceof Refusal) for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
          const message = e instanceof Refusal || isCoreError(e) ? e.message : 'internal server error; the server log has the details';
          return reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
        }
      },
    });
  });

  return {
    sessions: () => [...sessions.values()].map((s) => ({ protocol: s.kind, group: s.group, id: s.id })),
    closeAll: (reason) => {
      for (const s of [...sessions.values()]) s.end(reason);
    },
  };
}
