// Assembles one Atrium server: group files, tokens, ICE servers, the core,
// the protocol dialects and the HTTP routes. The CLI and the tests both
// start servers through this class.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { GroupAccess } from './access.ts';
import { LoginThrottle, type ThrottleLimits } from './auth/throttle.ts';
import { TokenStore } from './auth/tokens.ts';
import { GroupRegistry } from './core/registry.ts';
import { camusDialect } from './dialects/camus/routes.ts';
import { galeneDialect } from './dialects/galene/index.ts';
import { type AddressSource, DEFAULT_JOIN_TIMEOUT_MS, type Dialect, type DialectHost, WEBSOCKET_OPTIONS } from './dialects/kit/index.ts';
import { withTokenDescriptions } from './dialects/rtcpool/claims.ts';
import { rtcpoolDialect } from './dialects/rtcpool/transports.ts';
import { xmppDialect } from './dialects/xmpp/index.ts';
import { ServerConfigWatcher } from './config/server-config.ts';
import { GroupStore } from './groups/index.ts';
import { type MemberDirectory, registerAdminApi } from './http/admin.ts';
import { registerStaticClient } from './http/static-client.ts';
import { registerWebApp } from './http/web.ts';
import type { PlaceOptions } from './http/place.ts';
import { loadOrCreateCertificate } from './http/tls.ts';
import { type ConfiguredIceServer, configuredIceServers, rtcConfigurationFor } from './ice/index.ts';
import { type Logger, createLogger } from './log.ts';
import type { MediaEngine } from './media/index.ts';
import { type MediaOptions, closeMediaEngine, createMediaEngine } from './media/workers/index.ts';
import { Metrics } from './metrics.ts';
import { type GroupReport, collectStats, updateMediaGauges } from './stats.ts';
import { LivenessMonitor } from './transport/liveness.ts';

export interface ServerOptions {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  dataDir: string;
  groupsDir: string;
  /** Plain HTTP instead of HTTPS. */
  insecure: boolean;
  cert?: string | undefined;
  key?: string | undefined;
  /** A TURN server using the TURN REST API (coturn use-auth-secret). */
  turn?: { urls: string[]; secret: string; ttl?: number } | undefined;
  /** Write the default `public` group when the groups directory is empty. */
  defaultGroup?: boolean;
  log?: Logger;
  /**
   * The media engine: false runs a signalling-only server (stream messages
   * answer not-supported). additionalHostAddresses are offered as ICE host
   * candidates besides the machine's interfaces (loopback is skipped
   * otherwise); portRange bounds the UDP ports; workers is the number of
   * media worker threads (default: one per core; 0: media in this thread).
   */
  media?: false | MediaOptions;
  /**
   * Serve this directory's web client instead of Atrium's web app: its files
   * at /, its galene.html at /group/<name>/ (Galène's `-static`).
   */
  staticDir?: string | undefined;
  /** A connection that has not joined a group within this many milliseconds is closed (default 30 s; 0: never). */
  joinTimeoutMs?: number | undefined;
  /** Collect process metrics (CPU, memory) for /metrics. */
  processMetrics?: boolean;
  /** The XMPP domain (rooms are on conference.<domain>); default: the host of the configured proxyURL, else localhost. */
  xmppDomain?: string | undefined;
  /** How failed logins are throttled (defaults: DEFAULT_THROTTLE_LIMITS). */
  loginThrottle?: Partial<ThrottleLimits> | undefined;
}

export class AtriumServer {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly groups: GroupStore;
  readonly tokens: TokenStore;
  readonly registry: GroupRegistry;
  /** Failed logins on every way in: each dialect's join and the admin API. */
  readonly throttle: LoginThrottle;
  readonly engine: MediaEngine | undefined;
  private app: FastifyInstance | undefined;
  private readonly config: ServerConfigWatcher;
  private iceServers: ConfiguredIceServer[] = [];
  private readonly liveness = new LivenessMonitor();
  /** Every protocol the server speaks; each registers its own routes (dialects/kit/dialect.ts). */
  private readonly dialects: Dialect[];
  /** The URL the server answers on, once started. */
  url = '';

  constructor(readonly options: ServerOptions) {
    this.log = options.log ?? createLogger();
    this.metrics = new Metrics({ processMetrics: options.processMetrics ?? false });
    this.groups = new GroupStore({ dir: options.groupsDir, log: this.log });
    this.config = new ServerConfigWatcher({ dataDir: options.dataDir, log: this.log });
    this.tokens = new TokenStore({ file: join(options.dataDir, 'var', 'tokens.jsonl'), log: this.log });
    this.throttle = new LoginThrottle({ log: this.log, metrics: { failures: this.metrics.loginFailures, throttled: this.metrics.loginThrottled }, limits: options.loginThrottle });
    this.engine = options.media === false ? undefined : createMediaEngine(options.media ?? {}, this.log);
    this.registry = new GroupRegistry(this.groups, withTokenDescriptions(new GroupAccess(this.tokens, this.throttle)), (user) => rtcConfigurationFor(this.iceServers, user ?? '').iceServers ?? [], {
      engine: this.engine,
      onStreamError: (member, e) => this.log.warn({ err: e, client: member.id }, 'media stream error'),
      tokens: {
        create: (t) => this.tokens.create(t),
        get: async (token) => {
          await this.tokens.refresh();
          return this.tokens.get(token);
        },
        put: (t) => this.tokens.put(t),
        list: async (group) => {
          await this.tokens.refresh();
          return this.tokens.list(group).filter((t) => t.group === group);
        },
      },
      canChangePassword: () => this.config.current.writableGroups,
    });
    this.dialects = [galeneDialect(), camusDialect(), rtcpoolDialect(), xmppDialect({ tokens: this.tokens, throttle: this.throttle, domain: () => this.xmppDomain })];
    this.registry.on('memberAdded', () => this.metrics.members.inc());
    this.registry.on('memberRemoved', () => this.metrics.members.dec());
  }

  private placeOptions(): PlaceOptions {
    return { insecure: this.options.insecure, proxyURL: this.config.current.proxyURL };
  }

  async start(): Promise<void> {
    const o = this.options;
    // A fresh install has no data directory yet; make it so it can be watched.
    await mkdir(o.dataDir, { recursive: true });
    await this.config.start();
    this.iceServers = await configuredIceServers({ dataDir: o.dataDir, log: this.log, ...(o.turn ? { turn: o.turn } : {}) });
    if (o.defaultGroup ?? true) await this.groups.ensureDefaultGroup();
    await this.groups.start();
    await this.tokens.load();

    const https = o.insecure ? null : await loadOrCreateCertificate(o.dataDir, { cert: o.cert, key: o.key }, this.log);
    const app = Fastify({
      logger: false,
      bodyLimit: 1024 * 1024,
      ...(https ? { https } : {}),
    }) as unknown as FastifyInstance;
    this.app = app;
    await app.register(websocket, { options: WEBSOCKET_OPTIONS });

    app.get('/healthz', async () => ({ ok: true, groups: this.registry.groups().length }));
    app.get('/metrics', async (_req, reply) => {
      this.metrics.groups.set(this.registry.groups().length);
      updateMediaGauges(this.metrics.media, await collectStats(this.registry));
      return reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
    });
    // Galène at /ws and /group/<name>/, Camus at /room/<id>, RTCPool at /pool/ws and /socket.io/, XMPP at /xmpp-websocket and /http-bind.
    const dialectHost: DialectHost = {
      app,
      registry: this.registry,
      metrics: this.metrics,
      log: this.log,
      liveness: this.liveness,
      joinTimeoutMs: o.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS,
      place: () => this.placeOptions(),
      address: (req) => this.clientAddress(req),
      web: o.staticDir === undefined ? await registerWebApp(app, { log: this.log }) : await registerStaticClient(app, { dir: o.staticDir, log: this.log }),
    };
    for (const d of this.dialects) await d.register(dialectHost);
    await registerAdminApi(app, {
      groups: this.groups,
      config: () => this.config.current,
      tokens: this.tokens,
      stats: () => this.stats(),
      log: this.log,
      members: this.memberDirectory(),
      throttle: this.throttle,
      address: (r) => this.clientAddress(r),
      place: () => this.placeOptions(),
    });

    const { host, port } = parseListen(o.listen);
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = typeof addr === 'object' && addr ? addr.port : port;
    this.url = `${o.insecure ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    this.log.info({ url: this.url }, 'Atrium is listening');
  }

  /** The XMPP domain: as configured, else the host of the public URL, else localhost. */
  get xmppDomain(): string {
    if (this.options.xmppDomain) return this.options.xmppDomain;
    const proxy = this.config.current.proxyURL;
    if (proxy) {
      try {
        return new URL(proxy).hostname;
      } catch {
        // A proxyURL that is not a URL was reported when the config was read.
      }
    }
    return 'localhost';
  }

  /**
   * The address a request came from, for throttling failed logins: the
   * socket's peer, or, behind a reverse proxy (proxyURL set in
   * config.json), the address the proxy appended to X-Forwarded-For.
   */
  clientAddress(req: AddressSource): string | undefined {
    const peer = req.socket?.remoteAddress;
    if (!this.config.current.proxyURL) return peer;
    const xff = req.headers['x-forwarded-for'];
    const last = (Array.isArray(xff) ? xff.join(',') : (xff ?? '')).split(',').at(-1)?.trim();
    return last || peer;
  }

  /** Live members and their descriptions, for the admin API. */
  private memberDirectory(): MemberDirectory {
    const registry = this.registry;
    return {
      list: (group) => [...(registry.get(group)?.allMembers() ?? [])].map((m) => ({ id: m.id, username: m.username, description: m.description })),
      get: (group, id) => {
        const m = registry.get(group)?.member(id);
        return m === undefined ? undefined : { description: m.description };
      },
      describe: (group, id, description) => {
        const g = registry.get(group);
        const m = g?.member(id);
        if (g === undefined || m === undefined) return false;
        g.describeMember(m, description);
        return true;
      },
    };
  }

  /** Group, client and stream statistics, as the admin API's .stats gives them. */
  stats(): Promise<GroupReport[]> {
    return collectStats(this.registry);
  }

  async stop(): Promise<void> {
    for (const g of this.registry.groups()) g.dissolve('the server is shutting down');
    await Promise.all(this.dialects.map((d) => d.closeAll('the server is shutting down')));
    this.registry.close();
    if (this.engine) await closeMediaEngine(this.engine);
    this.groups.close();
    this.config.close();
    await this.app?.close();
  }
}

export type { AddressSource };

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:8443), not "${listen}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--listen: port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
