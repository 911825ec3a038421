// Assembles one Atrium server: group files, tokens, ICE servers, the core,
// the protocol dialects and the HTTP routes. The CLI and the tests both
// start servers through this class.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { GroupAccess } from './access.ts';
import { LoginThrottle, type ThrottleLimits } from './auth/throttle.ts';
import { TokenStore } from './auth/tokens.ts';
import { Cluster, type ClusterTimings, redactUrl } from './cluster/cluster.ts';
import { type AdminCluster, clusterAdmin } from './cluster/http.ts';
import { ClusterRegistry } from './cluster/registry.ts';
import { SharedGroups } from './cluster/shared-groups.ts';
import { SharedDescriptions } from './cluster/shared-descriptions.ts';
import { SharedTokens } from './cluster/shared-tokens.ts';
import { GroupRegistry, type Registry } from './core/registry.ts';
import { CoreError } from './core/errors.ts';
import { camusDialect } from './dialects/camus/routes.ts';
import { galeneDialect } from './dialects/galene/index.ts';
import { type AddressSource, DEFAULT_JOIN_TIMEOUT_MS, type Dialect, type DialectHost, WEBSOCKET_OPTIONS } from './dialects/kit/index.ts';
import { withTokenDescriptions } from './dialects/rtcpool/claims.ts';
import { rtcpoolDialect } from './dialects/rtcpool/transports.ts';
import { xmppDialect } from './dialects/xmpp/index.ts';
import { ServerConfigWatcher } from './config/server-config.ts';
import { GroupStore } from './groups/index.ts';
import { type MemberDirectory, registerAdminApi } from './http/admin.ts';
import { deleteRecording, registerRecordings } from './http/recordings.ts';
import { type HttpMediaRoutes, registerWhipWhep } from './http/whip.ts';
import { RecordingStore } from './recording/store.ts';
import { registerStaticClient } from './http/static-client.ts';
import { registerWebApp } from './http/web.ts';
import type { PlaceOptions } from './http/place.ts';
import { loadOrCreateCertificate } from './http/tls.ts';
import { type ConfiguredIceServer, configuredIceServers, rtcConfigurationFor } from './ice/index.ts';
import { type Logger, createLogger } from './log.ts';
import type { MediaEngine } from './media/index.ts';
import { type MediaOptions, closeMediaEngine, createMediaEngine } from './media/workers/index.ts';
import { Metrics } from './metrics.ts';
import { DiskRecording } from './recording/recorder.ts';
import { describeStorageProblem, storageProblem } from './storage.ts';
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
  /** Where recordings go, <dir>/<group>/ (default ./recordings, as Galène's -recordings). */
  recordingsDir?: string;
  /** The XMPP domain (rooms are on conference.<domain>); default: the host of the configured proxyURL, else localhost. */
  xmppDomain?: string | undefined;
  /** Seconds an XMPP session cut without a clean close waits for a resumption (XEP-0198; default 120). */
  xmppResumeSeconds?: number | undefined;
  /** Seconds a BOSH session may go without a request before it ends (XEP-0124 `inactivity`; default 60). */
  xmppBoshInactivitySeconds?: number | undefined;
  /** How failed logins are throttled (defaults: DEFAULT_THROTTLE_LIMITS). */
  loginThrottle?: Partial<ThrottleLimits> | undefined;
  /** Run as one node of a cluster coordinated through Redis (`--redis`); a single node without it. */
  cluster?: ClusterSettings | undefined;
}

/** A node of a cluster (`atrium serve --redis URL --node-id ID --public-url URL`). */
export interface ClusterSettings {
  redisUrl: string;
  nodeId: string;
  /** The node's base URL for clients, through the load balancer (e.g. https://meet.example.org/node/n1). */
  publicUrl: string;
  /** The node's base URL for the other nodes; by default the address it listens on. */
  internalUrl?: string | undefined;
  region?: string | undefined;
  labels?: string[] | undefined;
  /** How long a drain (SIGTERM, `.drain`) waits for the groups to empty before moving the rest (default 30 s). */
  drainTimeoutMs?: number | undefined;
  timings?: Partial<ClusterTimings> | undefined;
}

/** How long a drain waits for the node's groups to empty, by default. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export class AtriumServer {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly groups: GroupStore;
  readonly tokens: TokenStore;
  /** The groups live on this node. */
  readonly local: GroupRegistry;
  /** The way in for dialects and pages: `local` alone, or `local` placed in a cluster. */
  readonly registry: Registry;
  /** This node's membership of a cluster (--redis), if any. */
  readonly cluster: Cluster | undefined;
  private readonly sharedGroups: SharedGroups | undefined;
  private readonly sharedTokens: SharedTokens | undefined;
  private readonly sharedDescriptions: SharedDescriptions | undefined;
  private internalUrl = '';
  private drainStarted: Promise<void> | undefined;
  /** Failed logins on every way in: each dialect's join and the admin API. */
  readonly throttle: LoginThrottle;
  readonly engine: MediaEngine | undefined;
  /** Recording to disk; undefined without a media engine. */
  readonly recording: DiskRecording | undefined;
  private app: FastifyInstance | undefined;
  private readonly config: ServerConfigWatcher;
  private iceServers: ConfiguredIceServer[] = [];
  private readonly liveness = new LivenessMonitor();
  /** Every protocol the server speaks; each registers its own routes (dialects/kit/dialect.ts). */
  private readonly dialects: Dialect[];
  /** WHIP publishers and WHEP players (HTTP signalling, no WebSocket). */
  private httpMedia: HttpMediaRoutes | undefined;
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
    const rec = this.metrics.recordings;
    this.recording = this.engine
      ? new DiskRecording({
          dir: resolve(options.recordingsDir ?? 'recordings'),
          log: this.log,
          metrics: { active: (d) => rec.active.inc(d), bytes: (n) => rec.bytes.inc(n), error: (kind) => rec.errors.inc({ kind }), file: () => rec.files.inc() },
        })
      : undefined;
    this.local = new GroupRegistry(
      this.groups,
      withTokenDescriptions(new GroupAccess(this.tokens, this.throttle, () => this.config.current.canonicalHost)),
      (user) => rtcConfigurationFor(this.iceServers, user ?? '').iceServers ?? [],
      {
        engine: this.engine,
        onStreamError: (member, e) => this.log.warn({ err: e, client: member.id }, 'media stream error'),
        tokens: {
          // A token file that cannot be written (a full disk) is the server's problem: the member is told so, plainly.
          create: (t) => savingInvitation(this.tokens.create(t)),
          get: async (token) => {
            await this.tokens.refresh();
            return this.tokens.get(token);
          },
          put: (t) => savingInvitation(this.tokens.put(t)),
          list: async (group) => {
            await this.tokens.refresh();
            return this.tokens.list(group).filter((t) => t.group === group);
          },
        },
        canChangePassword: () => this.config.current.writableGroups,
        recording: this.recording,
      },
    );
    this.dialects = [
      galeneDialect(),
      camusDialect(),
      rtcpoolDialect(),
      xmppDialect({
        tokens: this.tokens,
        throttle: this.throttle,
        domain: () => this.xmppDomain,
        ...(options.xmppResumeSeconds === undefined ? {} : { resumeSeconds: options.xmppResumeSeconds }),
        ...(options.xmppBoshInactivitySeconds === undefined ? {} : { boshInactivitySeconds: options.xmppBoshInactivitySeconds }),
      }),
    ];
    this.local.on('memberAdded', () => this.metrics.members.inc());
    this.local.on('memberRemoved', () => this.metrics.members.dec());
    const c = options.cluster;
    if (c) {
      this.cluster = new Cluster({
        redisUrl: c.redisUrl,
        nodeId: c.nodeId,
        publicUrl: c.publicUrl.replace(/\/+$/, ''),
        internalUrl: () => this.internalUrl,
        region: c.region,
        labels: c.labels,
        timings: c.timings,
        log: this.log,
        load: () => this.load(),
      });
      this.registry = new ClusterRegistry(this.local, this.cluster, this.log, this.metrics.placements);
      this.sharedGroups = new SharedGroups(this.groups, this.cluster.redis, this.cluster.redis.duplicate(), c.nodeId, this.log);
      this.sharedTokens = new SharedTokens(this.tokens, this.cluster.redis, this.cluster.redis.duplicate(), c.nodeId, this.log);
      const cluster = this.cluster;
      const descriptions = new SharedDescriptions(
        cluster.redis,
        () => cluster.redisState === 'up',
        () => this.local.groups(),
        this.log,
      );
      this.sharedDescriptions = descriptions;
      this.local.on('memberAdded', (g, m) => void descriptions.restore(g, m));
    } else {
      this.cluster = undefined;
      this.registry = this.local;
      this.sharedTokens = undefined;
      this.sharedDescriptions = undefined;
    }
  }

  /** What this node carries, for placement and for the other nodes' pages. */
  private load(): { clients: number; streams: number; groups: Record<string, { clients: number; locked: boolean }> } {
    let clients = 0;
    let streams = 0;
    const groups: Record<string, { clients: number; locked: boolean }> = {};
    for (const g of this.local.groups()) {
      clients += g.size;
      streams += g.streams?.publicationCount ?? 0;
      groups[g.name] = { clients: g.size, locked: g.info().locked };
    }
    return { clients, streams, groups };
  }

  private placeOptions(): PlaceOptions {
    return { insecure: this.options.insecure, proxyURL: this.config.current.proxyURL, canonicalHost: this.config.current.canonicalHost, nodeUrl: this.cluster?.self.publicUrl };
  }

  /**
   * Whether this node should get new clients (/readyz): "ready", "degraded"
   * (Redis is away: the node still serves, so a Redis outage never takes
   * the whole fleet out of the load balancer), or "draining" (503).
   */
  readiness(): { status: 'ready' | 'degraded' | 'draining'; redis?: string } {
    const redis = this.cluster?.redisState;
    if (this.cluster?.isDraining) return { status: 'draining', redis };
    if (this.cluster && redis !== 'up') return { status: 'degraded', redis };
    return this.cluster ? { status: 'ready', redis } : { status: 'ready' };
  }

  /**
   * Drains this node (SIGTERM or the admin API's .drain in a cluster): it
   * takes no new groups and leaves the load balancer, serves its groups
   * until they are empty or the deadline passes, then lets the rest go —
   * their members are told and disconnected, and their clients reconnect
   * to the nodes that take the groups over. Resolves when the node is empty.
   */
  drain(timeoutMs = this.options.cluster?.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS): Promise<void> {
    this.drainStarted ??= (async () => {
      const cluster = this.cluster;
      this.log.info({ timeoutMs }, 'draining: no new groups on this node; waiting for its groups to empty');
      await cluster?.drain();
      const deadline = performance.now() + timeoutMs;
      while (performance.now() < deadline && this.local.groups().some((g) => g.size > 0)) await new Promise((r) => setTimeout(r, 250));
      const left = this.local.groups().filter((g) => g.size > 0);
      if (left.length > 0) this.log.info({ groups: left.map((g) => g.name) }, 'drain deadline passed: moving the groups still in use');
      for (const g of this.local.groups()) {
        await cluster?.release(g.name);
        this.local.evict(g.name, 'this server is going down for maintenance; reconnecting you to another one');
      }
    })();
    return this.drainStarted;
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
    this.sharedGroups?.start();
    this.sharedTokens?.start();
    this.sharedDescriptions?.start();

    const https = o.insecure ? null : await loadOrCreateCertificate(o.dataDir, { cert: o.cert, key: o.key }, this.log);
    const app = Fastify({
      logger: false,
      bodyLimit: 1024 * 1024,
      ...(https ? { https } : {}),
    }) as unknown as FastifyInstance;
    this.app = app;
    await app.register(websocket, { options: WEBSOCKET_OPTIONS });

    // Liveness (the process answers) and readiness (send it new clients) are apart: Redis never decides liveness.
    app.get('/healthz', async () => ({ ok: true, groups: this.local.groups().length }));
    app.get('/readyz', async (_req, reply) => {
      const r = this.readiness();
      return reply
        .code(r.status === 'draining' ? 503 : 200)
        .header('cache-control', 'no-store')
        .send({ ...r, node: this.cluster?.nodeId, groups: this.local.groups().length });
    });
    app.get('/metrics', async (_req, reply) => {
      this.metrics.groups.set(this.local.groups().length);
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
    const recordingStore = new RecordingStore(this.recording?.dir ?? resolve(o.recordingsDir ?? 'recordings'));
    const recordings = { store: recordingStore, recording: (group: string) => [...(this.recording?.active() ?? [])].some((r) => r.group === group) };
    if (this.engine) {
      this.httpMedia = await registerWhipWhep(app, { registry: this.registry, metrics: this.metrics, place: () => this.placeOptions(), log: this.log, address: (r) => this.clientAddress(r) });
    }
    await registerRecordings(app, { ...recordings, registry: this.local, place: () => this.placeOptions(), log: this.log, address: (r) => this.clientAddress(r) });
    await registerAdminApi(app, {
      recordings: { list: (g) => recordingStore.list(g), remove: (g, name) => deleteRecording(recordings, g, name) },
      groups: this.groups,
      config: () => this.config.current,
      tokens: this.tokens,
      stats: () => this.stats(),
      log: this.log,
      members: this.memberDirectory(),
      throttle: this.throttle,
      address: (r) => this.clientAddress(r),
      place: () => this.placeOptions(),
      cluster: this.adminCluster(),
    });

    const { host, port } = parseListen(o.listen);
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = typeof addr === 'object' && addr ? addr.port : port;
    this.url = `${o.insecure ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    this.log.info({ url: this.url }, 'Atrium is listening');
    if (this.cluster && o.cluster) {
      this.internalUrl = o.cluster.internalUrl?.replace(/\/+$/, '') ?? internalUrlOf(host, actualPort, o.insecure);
      await this.cluster.start();
      this.log.info({ node: this.cluster.nodeId, redis: redactUrl(o.cluster.redisUrl), publicUrl: this.cluster.self.publicUrl, internalUrl: this.internalUrl }, 'node of a cluster');
    }
  }

  /** The admin API's view of the cluster (undefined on a single node). */
  private adminCluster(): AdminCluster | undefined {
    const cluster = this.cluster;
    if (!cluster) return undefined;
    return clusterAdmin(cluster, this.registry, { drain: () => void this.drain().then(() => this.emitDrained()) });
  }

  private readonly drainedListeners: (() => void)[] = [];

  /** Called once a drain asked through the admin API is over (the CLI then stops the process). */
  onDrained(listener: () => void): void {
    this.drainedListeners.push(listener);
  }

  private emitDrained(): void {
    for (const l of this.drainedListeners) l();
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
        void this.sharedDescriptions?.remember(group, m, description);
        return true;
      },
    };
  }

  /** Group, client and stream statistics, as the admin API's .stats gives them. */
  stats(): Promise<GroupReport[]> {
    return collectStats(this.registry);
  }

  async stop(): Promise<void> {
    // recordings first, while their streams still flow: every file is finished and named
    await this.recording?.close();
    this.httpMedia?.closeAll('the server is shutting down');
    for (const g of this.local.groups()) g.dissolve('the server is shutting down');
    await Promise.all(this.dialects.map((d) => d.closeAll('the server is shutting down')));
    this.local.close();
    this.sharedGroups?.close();
    this.sharedTokens?.close();
    this.sharedDescriptions?.close();
    await this.cluster?.stop();
    if (this.engine) await closeMediaEngine(this.engine);
    this.groups.close();
    this.config.close();
    await this.app?.close();
  }
}

export type { AddressSource };

/** Where the other nodes reach a node that listens on host:port, when --internal-url does not say. */
function internalUrlOf(host: string, port: number, insecure: boolean): string {
  if (host === '0.0.0.0' || host === '::' || host === '') {
    throw new Error(`--listen ${host}:${port} names no address the other nodes can reach: give --internal-url (e.g. http://10.0.0.11:${port}) or listen on one address`);
  }
  return `${insecure ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:8443), not "${listen}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--listen: port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** An invitation the token store could not save for the machine's reasons becomes an error the member reads (tokenAction sends it back). */
async function savingInvitation<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (e) {
    if (storageProblem(e) === undefined) throw e;
    throw new CoreError('internal', describeStorageProblem(e, 'the invitation'));
  }
}
