// Janus (the Debian `janus` package) as the comparison SFU of `bench:sfu
// --compare janus`: a Janus process with a temporary configuration that loads
// only the VideoRoom plugin and the WebSocket transport, and a small client of
// Janus's JSON API over that WebSocket (sessions, handles, plugin messages
// with JSEP, trickle). The load generator's peers use it in peers.ts.
//
// Janus skips loopback interfaces when it gathers ICE candidates, so in the
// bench's loopback-only namespace it is started with janus/loopback-shim.c
// preloaded (built here with the system C compiler) and ice_enforce_list=lo.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { stopChild } from '../support/child.ts';
import { type ProcessCpu, processTreeThreads, treeCpuUs } from './server.ts';

const JANUS = '/usr/bin/janus';
const LIBDIR = '/usr/lib/x86_64-linux-gnu/janus';
const SHIM_SOURCE = fileURLToPath(new URL('./janus/loopback-shim.c', import.meta.url));
const READY = /Websockets server started \(port (\d+)\)/;

/** Why Janus cannot run here, or undefined when it can. */
export function janusMissing(): string | undefined {
  if (!existsSync(JANUS)) return `${JANUS} is not installed; install it with \`apt-get install janus\` (as root)`;
  if (!existsSync(join(LIBDIR, 'plugins/libjanus_videoroom.so'))) return `the VideoRoom plugin is missing from ${LIBDIR}/plugins; reinstall the janus package`;
  if (!existsSync(join(LIBDIR, 'transports/libjanus_websockets.so'))) return `the WebSocket transport is missing from ${LIBDIR}/transports; reinstall the janus package`;
  const cc = spawnSync('cc', ['--version'], { stdio: 'ignore' });
  if (cc.error || cc.status !== 0) return 'no C compiler (`cc`) to build the loopback preload for Janus; install gcc or clang';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const ALL_PLUGINS = ['audiobridge', 'duktape', 'echotest', 'lua', 'nosip', 'recordplay', 'sip', 'streaming', 'textroom', 'videocall', 'voicemail'];
const OTHER_TRANSPORTS = ['http', 'mqtt', 'nanomsg', 'pfunix', 'rabbitmq'];

function janusConfig(dir: string, eventLoops: number): string {
  return `general: {
	configs_folder = "${dir}"
	plugins_folder = "${LIBDIR}/plugins"
	transports_folder = "${LIBDIR}/transports"
	events_folder = "${LIBDIR}/events"
	loggers_folder = "${LIBDIR}/loggers"
	debug_level = 4
	session_timeout = 0
	event_loops = ${eventLoops}
}
media: {
}
nat: {
	ice_enforce_list = "lo"
	full_trickle = false
}
plugins: {
	disable = "${ALL_PLUGINS.map((p) => `libjanus_${p}.so`).join(',')}"
}
transports: {
	disable = "${OTHER_TRANSPORTS.map((t) => `libjanus_${t}.so`).join(',')}"
}
events: {
	broadcast = false
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
`;
}

export class JanusProcess implements ProcessCpu {
  private constructor(
    readonly child: ChildProcess,
    readonly wsUrl: string,
    private readonly root: string,
    private readonly output: () => string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }
  tail(): string {
    return this.output().slice(-3000);
  }
  cpuUs(): number {
    return treeCpuUs(this.pid);
  }
  threads() {
    return processTreeThreads(this.pid);
  }

  /** `eventLoops`: Janus's event_loops (0, its default: one loop thread per handle; N: N shared loops). */
  static async start(eventLoops = 0): Promise<JanusProcess> {
    const missing = janusMissing();
    if (missing) throw new Error(`Janus cannot run: ${missing}`);
    const root = await mkdtemp(join(tmpdir(), 'atrium-bench-janus-'));
    const shim = join(root, 'loopback-shim.so');
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, SHIM_SOURCE, '-ldl'], { encoding: 'utf8' });
    if (cc.status !== 0) {
      await rm(root, { recursive: true, force: true });
      throw new Error(`could not build ${SHIM_SOURCE} (cc exit ${cc.status}): ${cc.stderr}`);
    }
    const port = await freePort();
    await writeFile(join(root, 'janus.jcfg'), janusConfig(root, eventLoops));
    await writeFile(
      join(root, 'janus.transport.websockets.jcfg'),
      `general: {\n\tjson = "compact"\n\tws = true\n\tws_port = ${port}\n\tws_ip = "127.0.0.1"\n\twss = false\n}\nadmin: {\n\tadmin_ws = false\n\tadmin_wss = false\n}\n`,
    );
    await writeFile(join(root, 'janus.plugin.videoroom.jcfg'), 'general: {\n}\n');
    const child = spawn(JANUS, ['--disable-colors', '-F', root, '-C', join(root, 'janus.jcfg')], {
      env: { ...process.env, LD_PRELOAD: shim },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out = (out + d).slice(-20000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-20000)));
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`Janus did not start its WebSocket transport within 30 s:\n${out}`)), 30_000);
        child.stdout!.on('data', () => {
          if (READY.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`Janus exited (${signal ?? code}) before it was ready:\n${out}`));
        });
      });
      return new JanusProcess(child, `ws://127.0.0.1:${port}`, root, () => out);
    } catch (e) {
      child.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
      throw e;
    }
  }

  /** SIGINT (Janus's clean stop), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    await stopChild(this.child, { ask: 'SIGINT', graceMs: 10_000 });
    await rm(this.root, { recursive: true, force: true });
  }
}

export type JanusMessage = { janus: string; transaction?: string; sender?: number; session_id?: number; [k: string]: unknown };
export type Jsep = { type: 'offer' | 'answer'; sdp: string };
/** The VideoRoom's reply or event data, and the JSEP that came with it. */
export interface PluginReply {
  data: Record<string, unknown>;
  jsep: Jsep | undefined;
}

/** One Janus session over one WebSocket: handles, plugin messages, trickle. */
export class JanusClient {
  #ws: WebSocket | undefined;
  #session = 0;
  #next = 0;
  #pending = new Map<string, { resolve: (m: JanusMessage) => void; reject: (e: Error) => void; what: string }>();
  #events = new Map<number, (r: PluginReply) => void>();
  errors: string[] = [];

  async connect(url: string, label: string): Promise<void> {
    const ws = new WebSocket(url, 'janus-protocol', { perMessageDeflate: false, handshakeTimeout: 30_000 });
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (e) => reject(new Error(`${label}: WebSocket ${url} to Janus failed: ${e.message}`)));
    });
    ws.on('error', (e) => this.errors.push(`WebSocket: ${e.message}`));
    ws.on('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error(`${label}: Janus closed the WebSocket during ${p.what}`));
      this.#pending.clear();
    });
    ws.on('message', (raw) => this.#receive(JSON.parse(String(raw)) as JanusMessage));
    const created = await this.#request({ janus: 'create' }, 'create session');
    this.#session = (created.data as { id: number }).id;
  }

  #receive(m: JanusMessage): void {
    if (m.janus === 'ack') return; // the plugin's answer comes later as an event with the same transaction
    const waiting = m.transaction ? this.#pending.get(m.transaction) : undefined;
    const plugin = (m.plugindata as { data?: Record<string, unknown> } | undefined)?.data;
    const reply: PluginReply | undefined = plugin ? { data: plugin, jsep: m.jsep as Jsep | undefined } : undefined;
    if (waiting) {
      this.#pending.delete(m.transaction!);
      const error = (m.error as { reason?: string } | undefined)?.reason ?? (plugin?.error as string | undefined);
      if (m.janus === 'error' || error) waiting.reject(new Error(`Janus refused ${waiting.what}: ${error ?? JSON.stringify(m)}`));
      else waiting.resolve(m);
      return;
    }
    if (m.janus === 'event' && reply && m.sender !== undefined) this.#events.get(m.sender)?.(reply);
    else if (m.janus === 'hangup' || m.janus === 'detached') this.errors.push(`Janus ${m.janus} handle ${m.sender}: ${String(m.reason ?? '')}`);
  }

  #request(body: Record<string, unknown>, what: string): Promise<JanusMessage> {
    const transaction = `t${++this.#next}`;
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`${what}: the WebSocket to Janus is not open`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(transaction);
        reject(new Error(`Janus did not answer ${what} within 30 s`));
      }, 30_000);
      this.#pending.set(transaction, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        what,
      });
      ws.send(JSON.stringify({ ...body, transaction, ...(this.#session ? { session_id: this.#session } : {}) }));
    });
  }

  /** Attaches a VideoRoom handle; `onEvent` gets its asynchronous events. */
  async attach(onEvent?: (r: PluginReply) => void): Promise<number> {
    const m = await this.#request({ janus: 'attach', plugin: 'janus.plugin.videoroom' }, 'attach to the VideoRoom plugin');
    const handle = (m.data as { id: number }).id;
    if (onEvent) this.#events.set(handle, onEvent);
    return handle;
  }

  /** A VideoRoom request; resolves with the plugin's reply (synchronous or the event answering it). */
  async message(handle: number, body: Record<string, unknown>, jsep?: Jsep): Promise<PluginReply> {
    const m = await this.#request({ janus: 'message', handle_id: handle, body, ...(jsep ? { jsep } : {}) }, `VideoRoom "${String(body.request)}"`);
    const data = (m.plugindata as { data?: Record<string, unknown> } | undefined)?.data ?? {};
    return { data, jsep: m.jsep as Jsep | undefined };
  }

  /** Trickles one local candidate (or the end of them, with `null`); Janus acks, nothing to wait for. */
  trickle(handle: number, candidate: { candidate: string; sdpMid: string; sdpMLineIndex: number } | null): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ janus: 'trickle', handle_id: handle, session_id: this.#session, transaction: `t${++this.#next}`, candidate: candidate ?? { completed: true } }));
  }

  close(): void {
    this.#ws?.close();
  }
}

/** Creates the VideoRoom rooms a shape needs (VP8, no bitrate cap, room for every publisher). */
export async function createJanusRooms(url: string, rooms: { room: number; publishers: number }[]): Promise<void> {
  const c = new JanusClient();
  await c.connect(url, 'room set-up');
  try {
    const h = await c.attach();
    for (const r of rooms) {
      await c.message(h, { request: 'create', room: r.room, publishers: Math.max(r.publishers, 1), videocodec: 'vp8', audiocodec: 'opus', bitrate: 0, fir_freq: 0, notify_joining: false });
    }
  } finally {
    c.close();
  }
}
