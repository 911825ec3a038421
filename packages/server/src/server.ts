// Assembles one Atrium server: group files, tokens, ICE servers, the core,
// the protocol dialects and the HTTP routes. The CLI and the tests both
// start servers through this class.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { LIMITS } from '@atrium/protocol/galene';
import { GroupAccess } from './access.ts';
import { TokenStore } from './auth/tokens.ts';
import { GroupRegistry } from './core/registry.ts';
import { GaleneConnection, type GaleneContext } from './dialects/galene/connection.ts';
import { type CamusRoutes, registerCamusRoutes } from './dialects/camus/routes.ts';
import { withTokenDescriptions } from './dialects/rtcpool/claims.ts';
import { type RtcPoolRoutes, registerRtcPool } from './dialects/rtcpool/transports.ts';
import { ServerConfigWatcher } from './config/server-config.ts';
import { GroupStore } from './groups/index.ts';
import { type MemberDirectory, registerAdminApi } from './http/admin.ts';
import { registerGroupPages } from './http/pages.ts';
import { deleteRecording, registerRecordings } from './http/recordings.ts';
import { type HttpMediaRoutes, registerWhipWhep } from './http/whip.ts';
import { RecordingStore } from './recording/store.ts';
import { registerWebApp } from './http/web.ts';
import { type PlaceOptions, placeFor } from './http/place.ts';
import { loadOrCreateCertificate } from './http/tls.ts';
import { type ConfiguredIceServer, configuredIceServers, rtcConfigurationFor } from './ice/index.ts';
import { type Logger, createLogger } from './log.ts';
import type { MediaEngine } from './media/index.ts';
import { type MediaOptions, closeMediaEngine, createMediaEngine } from './media/workers/index.ts';
import { Metrics } from './metrics.ts';
import { DiskRecording } from './recording/recorder.ts';
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
  /** Collect process metrics (CPU, memory) for /metrics. */
  processMetrics?: boolean;
  /** Where recordings go, <dir>/<group>/ (default ./recordings, as Galène's -recordings). */
  recordingsDir?: string;
}

export class AtriumServer {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly groups: GroupStore;
  readonly tokens: TokenStore;
  readonly registry: GroupRegistry;
  readonly engine: MediaEngine | undefined;
  /** Recording to disk; undefined without a media engine. */
  readonly recording: DiskRecording | undefined;
  private app: FastifyInstance | undefined;
  private readonly config: ServerConfigWatcher;
  private iceServers: ConfiguredIceServer[] = [];
  private readonly liveness = new LivenessMonitor();
  private readonly galene: GaleneContext;
  private readonly sockets = new Set<GaleneConnection>();
  private camus: CamusRoutes | undefined;
  private rtcpool: RtcPoolRoutes | undefined;
  private httpMedia: HttpMediaRoutes | undefined;
  /** The URL the server answers on, once started. */
  url = '';

  constructor(readonly options: ServerOptions) {
    this.log = options.log ?? createLogger();
    this.metrics = new Metrics({ processMetrics: options.processMetrics ?? false });
    this.groups = new GroupStore({ dir: options.groupsDir, log: this.log });
    this.config = new ServerConfigWatcher({ dataDir: options.dataDir, log: this.log });
    this.tokens = new TokenStore({ file: join(options.dataDir, 'var', 'tokens.jsonl'), log: this.log });
    this.engine = options.media === false ? undefined : createMediaEngine(options.media ?? {}, this.log);
    const rec = this.metrics.recordings;
    this.recording = this.engine
      ? new DiskRecording({
          dir: resolve(options.recordingsDir ?? 'recordings'),
          log: this.log,
          metrics: { active: (d) => rec.active.inc(d), bytes: (n) => rec.bytes.inc(n), error: (kind) => rec.errors.inc({ kind }), file: () => rec.files.inc() },
        })
      : undefined;
    this.registry = new GroupRegistry(this.groups, withTokenDescriptions(new GroupAccess(this.tokens)), (user) => rtcConfigurationFor(this.iceServers, user ?? '').iceServers ?? [], {
      engine: this.engine,
      onStreamError: (member, e) => this.log.warn({ err: e, client: member.id }, 'media stream error'),
      makeInvite: async (t) => ({ ...(await this.tokens.create(t)) }),
      recording: this.recording,
    });
    this.galene = {
      registry: this.registry,
      metrics: this.metrics,
      log: this.log,
      liveness: this.liveness,
      activeIds: new Set(),
    };
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
    // ws drops frames over maxPayload with no reason; the dialects check
    // LIMITS.frameBytes themselves so the client is told why.
    await app.register(websocket, { options: { maxPayload: 4 * LIMITS.frameBytes, perMessageDeflate: false } });

    app.get('/healthz', async () => ({ ok: true, groups: this.registry.groups().length }));
    app.get('/metrics', async (_req, reply) => {
      this.metrics.groups.set(this.registry.groups().length);
      updateMediaGauges(this.metrics.media, await collectStats(this.registry));
      return reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
    });
    app.get('/ws', { websocket: true }, (socket, req) => {
      const conn = new GaleneConnection(socket, placeFor(req.headers.host, this.placeOptions()), this.galene);
      this.sockets.add(conn);
      socket.on('close', () => this.sockets.delete(conn));
    });
    // Mesh rooms: Camus at /room/<id>, RTCPool at /pool/ws and /socket.io/.
    const mesh = { registry: this.registry, metrics: this.metrics, log: this.log, liveness: this.liveness };
    this.camus = registerCamusRoutes(app, mesh, () => this.placeOptions());
    this.rtcpool = registerRtcPool(app, { ...mesh, place: () => this.placeOptions() });
    registerGroupPages(app, { registry: this.registry, place: () => this.placeOptions(), web: await registerWebApp(app, { log: this.log }) });
    const recordingStore = new RecordingStore(this.recording?.dir ?? resolve(o.recordingsDir ?? 'recordings'));
    const recordings = { store: recordingStore, recording: (group: string) => [...(this.recording?.active() ?? [])].some((r) => r.group === group) };
    if (this.engine) this.httpMedia = await registerWhipWhep(app, { registry: this.registry, metrics: this.metrics, place: () => this.placeOptions(), log: this.log });
    await registerRecordings(app, { ...recordings, registry: this.registry, place: () => this.placeOptions(), log: this.log });
    await registerAdminApi(app, {
      recordings: { list: (g) => recordingStore.list(g), remove: (g, name) => deleteRecording(recordings, g, name) },
      groups: this.groups,
      config: () => this.config.current,
      tokens: this.tokens,
      stats: () => this.stats(),
      log: this.log,
      members: this.memberDirectory(),
    });

    const { host, port } = parseListen(o.listen);
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = typeof addr === 'object' && addr ? addr.port : port;
    this.url = `${o.insecure ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    this.log.info({ url: this.url }, 'Atrium is listening');
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
    // recordings first, while their streams still flow: every file is finished and named
    await this.recording?.close();
    this.httpMedia?.closeAll('the server is shutting down');
    for (const g of this.registry.groups()) g.dissolve('the server is shutting down');
    for (const c of this.sockets) c.terminate('the server is shutting down', 'shutdown');
    this.camus?.closeAll('the server is shutting down');
    this.rtcpool?.closeAll('the server is shutting down');
    this.registry.close();
    if (this.engine) await closeMediaEngine(this.engine);
    this.groups.close();
    this.config.close();
    await this.app?.close();
  }
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:8443), not "${listen}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--listen: port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
