// The HTTP side of the XMPP dialect: XMPP over WebSocket at /xmpp-websocket
// (the path Jitsi deployments use, subprotocol `xmpp`) and BOSH at
// /http-bind, both taking Jitsi's `?token=`. Also decides whether a SASL
// login may go on: a password some group file accepts, or a token some
// group (or the token store) accepts; which room it opens is decided at join.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { looksLikeJwt, verifyGroupJwt } from '../../auth/jwt.ts';
import { type LoginAttempt, type LoginKeys, type LoginThrottle, LoginThrottledError } from '../../auth/throttle.ts';
import { checkStatefulToken, type TokenStore } from '../../auth/tokens.ts';
import type { GroupRegistry } from '../../core/registry.ts';
import { authenticateWithPassword } from '../../groups/index.ts';
import { type Place, type PlaceOptions, placeFor } from '../../http/place.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { LivenessMonitor } from '../../transport/liveness.ts';
import { BoshService } from './bosh.ts';
import { SessionDirectory, type XmppContext } from './context.ts';
import { RoomDirectory } from './muc.ts';
import type { Login, SaslFailure } from './sasl.ts';
import { XML_LIMITS } from './xml.ts';
import { XmppWebSocket } from './websocket.ts';

export interface XmppOptions {
  registry: GroupRegistry;
  tokens: TokenStore;
  metrics: Metrics;
  log: Logger;
  liveness: LivenessMonitor;
  /** Failed logins, throttled per user and address (as for every other way in). */
  throttle?: LoginThrottle | undefined;
  /** The network address a request came from. */
  address?: ((req: { socket?: { remoteAddress?: string | undefined }; headers: Record<string, string | string[] | undefined> }) => string | undefined) | undefined;
  /** The XMPP domain; rooms live on conference.<domain>. */
  domain: string;
  place: () => PlaceOptions;
  /** Seconds a dropped session may be resumed (XEP-0198); default 120. */
  resumeSeconds?: number;
}

export interface XmppRoutes {
  readonly context: XmppContext;
  /** Ends every XMPP session (the server is stopping). */
  closeAll(reason: string): void;
}

type XmppRequest = FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>;

function single(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

export function registerXmpp(app: FastifyInstance, o: XmppOptions): XmppRoutes {
  const domain = o.domain.toLowerCase();
  const ctx: XmppContext = {
    domain,
    mucDomain: `conference.${domain}`,
    focusDomain: `focus.${domain}`,
    registry: o.registry,
    metrics: o.metrics,
    log: o.log,
    sessions: new SessionDirectory(),
    rooms: new RoomDirectory(o.registry, `conference.${domain}`),
    checkLogin: (login, place, address) => checkLogin(o, login, place, address),
    resumeSeconds: o.resumeSeconds ?? 120,
  };
  const sockets = new Set<XmppWebSocket>();
  const bosh = new BoshService(ctx);

  app.get('/xmpp-websocket', { websocket: true }, (socket, req: XmppRequest) => {
    const conn = new XmppWebSocket(socket, placeFor(req.headers.host, o.place()), single(req.query.token), o.address?.(req), ctx, o.liveness);
    sockets.add(conn);
    socket.on('close', () => sockets.delete(conn));
  });

  // BOSH bodies are XML; this scope reads them as text, whatever the client calls them.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: XML_LIMITS.maxChars + 64 * 1024 }, (_req, body, done) => done(null, body));
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'POST, GET, OPTIONS', 'access-control-allow-headers': 'Content-Type', 'access-control-max-age': '86400' };
    scope.options('/http-bind', async (_req, reply) => reply.code(204).headers(cors).send());
    scope.get('/http-bind', async (_req, reply) =>
      reply
        .headers(cors)
        .type('text/plain; charset=utf-8')
        .send(`This is Atrium's BOSH endpoint (XEP-0124/0206) for the XMPP domain ${domain}: POST <body/> elements here. XMPP over WebSocket is at /xmpp-websocket.\n`),
    );
    scope.post('/http-bind', async (req: XmppRequest, reply) => {
      const text = typeof req.body === 'string' ? req.body : '';
      const r = await bosh.handle(text, placeFor(req.headers.host, o.place()), single(req.query.token), o.address?.(req));
      return reply.code(r.status).headers(cors).type('text/xml; charset=utf-8').send(r.body);
    });
  });

  return {
    context: ctx,
    closeAll(reason) {
      for (const s of [...ctx.sessions.all()]) s.end(reason);
      for (const c of [...sockets]) c.stream.fail('system-shutdown', reason);
      bosh.closeAll(reason);
    },
  };
}

type Refusal = { condition: SaslFailure; text: string } | undefined;

/** Whether SASL may succeed; the room a session joins checks the same credentials again, for that group. Throttled like every login. */
async function checkLogin(o: XmppOptions, login: Login, place: Place, address: string | undefined): Promise<Refusal> {
  if (login.kind === 'anonymous') return undefined;
  const keys: LoginKeys = login.kind === 'password' ? { user: { key: `xmpp\n${login.username}`, label: `user "${login.username}"` }, address, via: 'xmpp' } : { address, via: 'xmpp' };
  let attempt: LoginAttempt | undefined;
  try {
    attempt = o.throttle?.begin(keys);
  } catch (e) {
    if (e instanceof LoginThrottledError) return { condition: 'temporary-auth-failure', text: e.message };
    throw e;
  }
  let refusal: string | undefined;
  try {
    refusal = login.kind === 'password' ? await checkPassword(o, login.username, login.password) : await checkToken(o, login.token, place);
  } catch (e) {
    attempt?.abandoned();
    throw e;
  }
  if (refusal === undefined) attempt?.succeeded();
  else attempt?.failed(refusal);
  return refusal === undefined ? undefined : { condition: 'not-authorized', text: refusal };
}

async function checkPassword(o: XmppOptions, username: string, password: string): Promise<string | undefined> {
  const groups = o.registry.describeAll();
  // A user named in group files must give one of those passwords; another name may be any group's wildcard user.
  const named = groups.filter((d) => Object.hasOwn(d.users, username));
  for (const d of named.length > 0 ? named : groups) if (await authenticateWithPassword(d, username, password)) return undefined;
  return named.length > 0 ? `wrong password for user "${username}" (a user of ${named.map((d) => `"${d.name}"`).join(', ')})` : `no group on this server accepts user "${username}" with this password`;
}

async function checkToken(o: XmppOptions, token: string, place: Place): Promise<string | undefined> {
  if (looksLikeJwt(token)) {
    for (const d of o.registry.describeAll()) {
      if (d.authKeys.length === 0) continue;
      try {
        await verifyGroupJwt(token, { keys: d.authKeys, groupUrl: place.groupUrl(d.name) });
        return undefined;
      } catch {
        // Not this group's token; try the next one.
      }
    }
  }
  await o.tokens.refresh();
  const stateful = o.tokens.get(token);
  if (stateful) {
    try {
      checkStatefulToken(stateful, stateful.group);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }
  return 'this token is not valid for any group on this server (unknown, expired, or signed with a key no group has)';
}
