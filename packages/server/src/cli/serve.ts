// `atrium serve`: run the server until SIGINT or SIGTERM.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { loadServerConfig } from '../config/server-config.ts';
import { type Logger, createLogger } from '../log.ts';
import { ENGINE_CHOICES, type EngineChoice } from '../media/workers/index.ts';
import { AtriumServer, type ClusterSettings } from '../server.ts';
import { parse } from './args.ts';

const HELP = `Usage: atrium serve [options]

  --listen HOST:PORT   address to listen on (default 0.0.0.0:8443)
  --data DIR           data directory: config.json, ice-servers.json, cert.pem,
                       key.pem, var/tokens.jsonl (default ./data)
  --groups DIR         group files, groups/<name>.json (default ./groups)
  --insecure           plain HTTP instead of HTTPS
  --cert FILE          TLS certificate (default DATA/cert.pem, generated
                       self-signed when missing)
  --key FILE           TLS private key (default DATA/key.pem)
  --turn URL           a TURN server using the TURN REST API (repeatable),
                       e.g. turn:turn.example.org:3478
  --turn-secret S      its shared secret (coturn static-auth-secret); also
                       read from the ATRIUM_TURN_SECRET environment variable
  --turn-ttl SECONDS   lifetime of TURN credentials (default 86400)
  --media-address IP   an address to offer as an ICE host candidate besides
                       the machine's interfaces (repeatable; loopback is not
                       offered otherwise)
  --udp-range MIN-MAX  UDP ports for media (default: any)
  --media-engine E     auto (default), native or js: native forwards media in
                       C++ (the packages/native addon) in worker processes;
                       js is the JavaScript engine in worker threads; auto is
                       native when the addon is built and loads, else js
  --media-workers N    media workers (processes for native, threads for js),
                       groups spread over them (default: the number of cores,
                       here ${availableParallelism()}; 0: js media in the main thread)
  --no-media           signalling only: no media engine
  --recordings DIR     where recordings go, DIR/<group>/ (default ./recordings)
  --static DIR         serve another web client instead of Atrium's: the files
                       of DIR at /, DIR/galene.html at /group/<name>/ (as
                       Galène's -static; e.g. the static/ folder of Galène)
  --xmpp-domain NAME   the XMPP domain (rooms on conference.NAME; default: the
                       host of the configured proxyURL, else localhost)
  --xmpp-bosh-inactivity SECONDS  end a BOSH session (/http-bind) after this
                       long without a request (default 60); a session with
                       stream management then waits for a resumption
  --join-timeout SECONDS  close a connection that has not joined a group
                       within this time (default 30; 0: never)
  --log-level LEVEL    trace, debug, info, warn, error (default info)

Running several nodes (a cluster coordinated through Redis, behind HAProxy;
see docs/cluster.md and deploy/). Also the "cluster" section of
DATA/config.json: {"redis", "nodeId", "publicUrl", "internalUrl", "region", "labels",
"drainTimeout"}; options given here win.
  --redis URL          Redis to coordinate through, e.g. redis://10.0.0.5:6379
                       (also ATRIUM_REDIS_URL); without it, a single node
  --node-id ID         this node's name in the cluster (default: the host name)
  --public-url URL     where clients reach this node through the load balancer,
                       e.g. https://meet.example.org/node/n1 (default: config.json's
                       proxyURL followed by /node/ID)
  --internal-url URL   where the other nodes reach this node (default: the
                       --listen address, which must then be a specific one)
  --region NAME        place groups whose file says "region": NAME here
  --label NAME         a label of this node (repeatable): a group whose file
                       says "labels": [...] is placed on a node with all of them
  --drain-timeout SECONDS  on SIGTERM or \`atrium ctl drain\`, how long to wait
                       for this node's groups to empty before moving them
                       (default 30)

A "public" group anyone can join is created when the groups directory is empty.
`;

export async function runServe(argv: string[]): Promise<number> {
  const { values } = parse('serve', argv, {
    listen: { type: 'string', default: '0.0.0.0:8443' },
    data: { type: 'string', default: './data' },
    groups: { type: 'string', default: './groups' },
    insecure: { type: 'boolean', default: false },
    cert: { type: 'string' },
    key: { type: 'string' },
    turn: { type: 'string', multiple: true },
    'turn-secret': { type: 'string' },
    'turn-ttl': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    'media-address': { type: 'string', multiple: true },
    'udp-range': { type: 'string' },
    'no-media': { type: 'boolean', default: false },
    'media-workers': { type: 'string' },
    recordings: { type: 'string', default: './recordings' },
    'media-engine': { type: 'string', default: 'auto' },
    static: { type: 'string' },
    'xmpp-domain': { type: 'string' },
    'xmpp-bosh-inactivity': { type: 'string' },
    'join-timeout': { type: 'string' },
    redis: { type: 'string' },
    'node-id': { type: 'string' },
    'public-url': { type: 'string' },
    'internal-url': { type: 'string' },
    region: { type: 'string' },
    label: { type: 'string', multiple: true },
    'drain-timeout': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const turnUrls = (values.turn as string[] | undefined) ?? [];
  const turnSecret = (values['turn-secret'] as string | undefined) ?? process.env.ATRIUM_TURN_SECRET;
  if (turnUrls.length > 0 && !turnSecret) throw new Error('serve: --turn needs --turn-secret (or ATRIUM_TURN_SECRET)');
  const ttl = values['turn-ttl'] === undefined ? undefined : Number(values['turn-ttl']);
  if (ttl !== undefined && !(ttl > 0)) throw new Error('serve: --turn-ttl must be a positive number of seconds');

  let portRange: [number, number] | undefined;
  if (values['udp-range'] !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(values['udp-range'] as string);
    if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) > 65535) throw new Error('serve: --udp-range must be MIN-MAX with MIN < MAX <= 65535, e.g. 40000-40999');
    portRange = [Number(m[1]), Number(m[2])];
  }
  let workers: number | undefined;
  if (values['media-workers'] !== undefined) {
    workers = Number(values['media-workers']);
    if (!/^\d+$/.test(values['media-workers'] as string) || workers > 1024)
      throw new Error(`serve: --media-workers must be a whole number from 0 to 1024 (0: media in the main thread), not "${values['media-workers']}"`);
  }
  const engine = values['media-engine'] as string;
  if (!ENGINE_CHOICES.includes(engine as EngineChoice)) throw new Error(`serve: --media-engine must be auto, native or js, not "${engine}"`);
  let joinTimeoutMs: number | undefined;
  if (values['join-timeout'] !== undefined) {
    const seconds = Number(values['join-timeout']);
    if (!(seconds >= 0) || seconds > 86400) throw new Error(`serve: --join-timeout must be a number of seconds from 0 to 86400 (0: never), not "${values['join-timeout']}"`);
    joinTimeoutMs = seconds * 1000;
  }
  let xmppBoshInactivitySeconds: number | undefined;
  if (values['xmpp-bosh-inactivity'] !== undefined) {
    const seconds = Number(values['xmpp-bosh-inactivity']);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600)
      throw new Error(`serve: --xmpp-bosh-inactivity must be a whole number of seconds from 1 to 3600, not "${values['xmpp-bosh-inactivity']}"`);
    xmppBoshInactivitySeconds = seconds;
  }
  const media = values['no-media']
    ? (false as const)
    : {
        additionalHostAddresses: (values['media-address'] as string[] | undefined) ?? [],
        ...(portRange ? { portRange } : {}),
        ...(workers !== undefined ? { workers } : {}),
        engine: engine as EngineChoice,
      };

  const log = createLogger({ level: values['log-level'] as string });
  const dataDir = resolve(values.data as string);
  const cluster = await clusterSettings(values, dataDir, log);
  const server = new AtriumServer({
    listen: values.listen as string,
    dataDir,
    groupsDir: resolve(values.groups as string),
    insecure: values.insecure as boolean,
    cert: values.cert as string | undefined,
    key: values.key as string | undefined,
    turn: turnUrls.length > 0 && turnSecret ? { urls: turnUrls, secret: turnSecret, ...(ttl ? { ttl } : {}) } : undefined,
    processMetrics: true,
    recordingsDir: resolve(values.recordings as string),
    staticDir: values.static === undefined ? undefined : resolve(values.static as string),
    media,
    xmppDomain: values['xmpp-domain'] as string | undefined,
    xmppBoshInactivitySeconds,
    joinTimeoutMs,
    log,
    cluster,
  });
  await server.start();
  process.stdout.write(`Atrium is running at ${server.url}/ (group "public": ${server.url}/group/public/)\n`);

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      server.stop().then(done, (e) => {
        log.error({ err: e }, 'error during shutdown');
        done();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    // A node of a cluster drains first: its groups empty or move, then it stops.
    process.once('SIGTERM', () => {
      if (!cluster) return stop('SIGTERM');
      server.drain().then(
        () => stop('SIGTERM'),
        () => stop('SIGTERM'),
      );
    });
    server.onDrained(() => stop('drain'));
  });
  return 0;
}

/** --redis and its companions, over the `cluster` section of config.json; undefined for a single node. */
async function clusterSettings(values: Record<string, unknown>, dataDir: string, log: Logger): Promise<ClusterSettings | undefined> {
  const config = await loadServerConfig(dataDir, log);
  const file = config.cluster ?? {};
  const str = (k: string) => values[k] as string | undefined;
  const redisUrl = str('redis') ?? process.env.ATRIUM_REDIS_URL ?? file.redis;
  if (redisUrl === undefined) {
    for (const k of ['node-id', 'public-url', 'internal-url', 'region', 'label', 'drain-timeout']) {
      if (values[k] !== undefined) throw new Error(`serve: --${k} is for a node of a cluster; give --redis URL too`);
    }
    return undefined;
  }
  if (!/^rediss?:\/\//.test(redisUrl)) throw new Error(`serve: --redis must be a Redis URL such as redis://10.0.0.5:6379, not "${redisUrl}"`);
  const nodeId = str('node-id') ?? file.nodeId ?? hostname().split('.')[0]!;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(nodeId)) throw new Error(`serve: --node-id must be letters, digits, "-" or "_" (at most 64), not "${nodeId}"`);
  let publicUrl = str('public-url') ?? file.publicUrl;
  if (publicUrl === undefined && config.proxyURL) publicUrl = `${config.proxyURL.replace(/\/+$/, '')}/node/${nodeId}`;
  if (publicUrl === undefined) {
    throw new Error('serve: a node of a cluster needs --public-url (where clients reach this node through the load balancer, e.g. https://meet.example.org/node/n1), or proxyURL in config.json');
  }
  for (const [k, v] of [
    ['public-url', publicUrl],
    ['internal-url', str('internal-url') ?? file.internalUrl],
  ] as const) {
    if (v !== undefined && !/^https?:\/\/[^/]/.test(v)) throw new Error(`serve: --${k} must be an http(s) URL, not "${v}"`);
  }
  const labels = (values.label as string[] | undefined) ?? file.labels;
  for (const l of labels ?? []) if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(l)) throw new Error(`serve: --label must be letters, digits, "_", ".", ":" or "-" (at most 64), not "${l}"`);
  const drain = str('drain-timeout');
  const drainSeconds = drain === undefined ? file.drainTimeout : Number(drain);
  if (drainSeconds !== undefined && !(drainSeconds >= 0 && drainSeconds <= 86400)) throw new Error(`serve: --drain-timeout must be a number of seconds from 0 to 86400, not "${drain}"`);
  return {
    redisUrl,
    nodeId,
    publicUrl,
    internalUrl: str('internal-url') ?? file.internalUrl,
    region: str('region') ?? file.region,
    ...(labels !== undefined && labels.length > 0 ? { labels: [...new Set(labels)] } : {}),
    ...(drainSeconds !== undefined ? { drainTimeoutMs: drainSeconds * 1000 } : {}),
  };
}
