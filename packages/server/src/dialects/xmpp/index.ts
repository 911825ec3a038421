// The XMPP dialect: XMPP over WebSocket at /xmpp-websocket (the path Jitsi
// deployments use, subprotocol `xmpp`) and BOSH at /http-bind, both taking
// Jitsi's `?token=`; MUC rooms are groups (muc.ts), Atrium is the Jingle
// focus (focus.ts), with Colibri-style bridge channels at /colibri-ws/
// (colibri.ts). Also decides whether a SASL login may go on: a password
// some group file accepts, or a token some group (or the token store)
// accepts; which room it opens is decided at join.
import type { FastifyRequest } from 'fastify';
import { looksLikeJwt, verifyGroupJwt } from '../../auth/jwt.ts';
import { type LoginAttempt, type LoginKeys, type LoginThrottle, LoginThrottledError } from '../../auth/throttle.ts';
import { checkStatefulToken, type TokenStore } from '../../auth/tokens.ts';
import { authenticateWithPassword } from '../../groups/index.ts';
import { type Place, placeFor } from '../../http/place.ts';
import { Connections, contextOf, type Dialect, type DialectHost, WebSocketTransport } from '../kit/index.ts';
import { BOSH_LIMITS, BoshService } from './bosh.ts';
import { BridgeChannel, BridgeDirectory, COLIBRI_DIALECT, COLIBRI_PATH, COLIBRI_SERVER_ID } from './colibri.ts';
import { DIALECT, XmppConnection } from './connection.ts';
import { SessionDirectory, type XmppContext } from './context.ts';
import { RoomDirectory } from './muc.ts';
import type { Login, SaslFailure } from './sasl.ts';
import { XmppWebSocketTransport } from './websocket.ts';

export interface XmppOptions {
  tokens: TokenStore;
  /** Failed logins, throttled per user and address (as for every other way in). */
  throttle?: LoginThrottle | undefined;
  /** The XMPP domain, read when the server starts; rooms live on conference.<domain>. */
  domain: () => string;
  /** Seconds a dropped session may be resumed (XEP-0198); default 120. */
  resumeSeconds?: number;
  /** Seconds a BOSH session may go without a request (XEP-0124 `inactivity`); default BOSH_LIMITS.inactivity. */
  boshInactivitySeconds?: number;
}

type XmppRequest = FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>;

function single(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

export function xmppDialect(o: XmppOptions): Dialect {
  const connections = new Connections<XmppConnection>();
  const channels = new Connections<BridgeChannel>();
  let context: XmppContext | undefined;
  return {
    name: DIALECT,
    register(host: DialectHost) {
      const domain = o.domain().toLowerCase();
      const ctx: XmppContext = {
        ...contextOf(host),
        domain,
        mucDomain: `conference.${domain}`,
        focusDomain: `focus.${domain}`,
        sessions: new SessionDirectory(),
        rooms: new RoomDirectory(host.registry, `conference.${domain}`),
        bridges: new BridgeDirectory(),
        checkLogin: (login, place, address) => checkLogin(o, host, login, place, address),
        resumeSeconds: o.resumeSeconds ?? 120,
      };
      context = ctx;
      const bosh = new BoshService(ctx, (c) => connections.add(c), o.boshInactivitySeconds ?? BOSH_LIMITS.inactivity);

      host.app.get('/xmpp-websocket', { websocket: true }, (socket, req: XmppRequest) => {
        connections.add(new XmppConnection(new XmppWebSocketTransport(socket), placeFor(req.headers.host, host.place()), single(req.query.token), host.address(req), ctx));
      });

      // A bridge channel: the URL (group, endpoint, pwd) was in the focus's Jingle offer to that occupant.
      host.app.get(
        `${COLIBRI_PATH}/:server/:group/:endpoint`,
        { websocket: true },
        (socket, req: FastifyRequest<{ Params: { server: string; group: string; endpoint: string }; Querystring: Record<string, string | string[] | undefined> }>) => {
          const { server, group, endpoint } = req.params;
          const e = server === COLIBRI_SERVER_ID ? ctx.bridges.find(group, endpoint, single(req.query.pwd) ?? '') : undefined;
          if (!e) {
            host.metrics.errors.inc({ dialect: COLIBRI_DIALECT, kind: 'not-authorised' });
            socket.close(1008, 'no bridge channel here: the endpoint is not in a conference, or the pwd is wrong');
            return;
          }
          channels.add(new BridgeChannel(new WebSocketTransport(socket), ctx, e));
        },
      );

      // BOSH bodies are XML; this scope reads them as text, whatever the client calls them.
      void host.app.register(async (scope) => {
        scope.removeAllContentTypeParsers();
        scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BOSH_LIMITS.maxBodyChars * 4 }, (_req, body, done) => done(null, body));
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
          const r = await bosh.handle(text, placeFor(req.headers.host, host.place()), single(req.query.token), host.address(req));
          return reply.code(r.status).headers(cors).type('text/xml; charset=utf-8').send(r.body);
        });
      });
    },
    closeAll(reason) {
      // Sessions waiting for a resumption have no connection: they end here too.
      for (const s of [...(context?.sessions.all() ?? [])]) s.end(reason);
      channels.closeAll(reason);
      connections.closeAll(reason);
    },
  };
}

type Refusal = { condition: SaslFailure; text: string } | undefined;

/** Whether SASL may succeed; the room a session joins checks the same credentials again, for that group. Throttled like every login. */
async function checkLogin(o: XmppOptions, host: DialectHost, login: Login, place: Place, address: string | undefined): Promise<Refusal> {
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
    refusal = login.kind === 'password' ? await checkPassword(host, login.username, login.password) : await checkToken(o, host, login.token, place);
  } catch (e) {
    attempt?.abandoned();
    throw e;
  }
  if (refusal === undefined) attempt?.succeeded();
  else attempt?.failed(refusal);
  return refusal === undefined ? undefined : { condition: 'not-authorized', text: refusal };
}

async function checkPassword(host: DialectHost, username: string, password: string): Promise<string | undefined> {
  const groups = host.registry.describeAll();
  // A user named in group files must give one of those passwords; another name may be any group's wildcard user.
  const named = groups.filter((d) => Object.hasOwn(d.users, username));
  for (const d of named.length > 0 ? named : groups) if (await authenticateWithPassword(d, username, password)) return undefined;
  return named.length > 0 ? `wrong password for user "${username}" (a user of ${named.map((d) => `"${d.name}"`).join(', ')})` : `no group on this server accepts user "${username}" with this password`;
}

async function checkToken(o: XmppOptions, host: DialectHost, token: string, place: Place): Promise<string | undefined> {
  if (looksLikeJwt(token)) {
    // The same rules as a join's: the group file's audience rule, and config.json's canonicalHost for a "path" audience.
    const canonicalHost = host.place().canonicalHost;
    for (const d of host.registry.describeAll()) {
      if (d.authKeys.length === 0) continue;
      try {
        await verifyGroupJwt(token, { keys: d.authKeys, groupUrl: place.groupUrl(d.name), audience: d.tokenAudience, ...(canonicalHost === undefined ? {} : { canonicalHost }) });
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
