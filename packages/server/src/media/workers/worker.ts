// One media worker: a media engine on its own thread (werift) or in its own
// process (native: werift plus the packet plane, so that a fault in native
// code ends this process only). The server's ThreadedEngine sends it method
// calls as messages and gets the streams' events back (see protocol.ts).
// Up-streams of one group and every down-stream fed by them live on the same
// worker, so RTP never crosses workers: only signalling (SDP, candidates,
// state, stats) and the packets of taps and source streams do.
import { readlinkSync } from 'node:fs';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import type { DownStream, IceCandidate, MediaEngine, PacketBatch, SourceStream, TrackTap, UpStream } from '../engine.ts';
import { loadNativeAddon } from '../native/addon.ts';
import { NativeEngine } from '../native/engine.ts';
import type { NativeLink } from '../native/link.ts';
import { WeriftEngine } from '../werift/engine.ts';
import { packPackets, unpackPackets } from './packets.ts';
import { RTCCertificate, RTCDtlsTransport } from 'werift';
import { GONE, type DtlsKeys, type CallMethod, type FromWorker, type TapEnd, type ToWorker, type TrackInfo, type WorkerProbe, type WorkerSetup } from './protocol.ts';

/** The way to the server: the thread's port, or the process's IPC channel (which copies what a thread would transfer). */
interface Port {
  postMessage(m: FromWorker, transfer?: ArrayBuffer[]): void;
  on(event: 'message', f: (m: ToWorker) => void): void;
}
let port: Port;
let setup: WorkerSetup;
if (parentPort) {
  port = parentPort;
  setup = workerData as WorkerSetup;
} else if (process.send && process.env.ATRIUM_MEDIA_WORKER) {
  setup = JSON.parse(process.env.ATRIUM_MEDIA_WORKER) as WorkerSetup;
  const send = process.send.bind(process);
  port = { postMessage: (m) => void send(m), on: (_e, f) => void process.on('message', f as (m: unknown) => void) };
  // the server is gone: so is this worker (its sockets and peer connections with it)
  process.on('disconnect', () => process.exit(0));
} else {
  throw new Error('media/workers/worker.ts runs inside a media worker started by createThreadedEngine(), not on its own');
}

/**
 * A native worker's DTLS certificate: its predecessor's when it replaces a
 * dead worker (its peers' DTLS associations then survive an ICE restart
 * towards it), else werift's own for this process; reported to the server
 * with 'ready'.
 */
async function certificate(): Promise<DtlsKeys> {
  const cls = RTCDtlsTransport as unknown as { localCertificate?: RTCCertificate; SetupCertificate(): Promise<RTCCertificate> };
  if (setup.dtls) cls.localCertificate = new RTCCertificate(setup.dtls.keyPem, setup.dtls.certPem, setup.dtls.signatureHash as never);
  const cert = await cls.SetupCertificate();
  return { certPem: cert.certPem, keyPem: cert.privateKey, signatureHash: { ...(cert.signatureHash as { hash: number; signature: number }) } };
}

function makeEngine(): MediaEngine {
  if (setup.kind !== 'native') return new WeriftEngine(setup.engine);
  const load = loadNativeAddon();
  if (!load.ok) throw new Error(`media worker ${setup.index}: the native media engine is not available: ${load.reason}`);
  return new NativeEngine(load.addon, { ...setup.engine, log: { warn: (_o, msg) => console.error(msg) } });
}
const engine = makeEngine();

const ups = new Map<number, UpStream>();
const downs = new Map<number, DownStream>();
/** Source streams by the handle of their up-stream (which is in `ups` too). */
const sources = new Map<number, SourceStream>();
/** Taps by the main thread's number, with the ack that lets the next batch go. */
const taps = new Map<number, { tap: TrackTap; ack: (() => void) | undefined }>();
/** The last track list sent for each up-stream, to send only changes. */
const sentTracks = new Map<number, string>();
/** Every stream and peer connection made here, weakly: a probe counts those still reachable (leak checks). */
const made: { streams: WeakRef<object>[]; pcs: WeakRef<object>[] } = { streams: [], pcs: [] };

let pruneAt = 1024;

function remember(stream: UpStream | DownStream): void {
  made.streams.push(new WeakRef(stream));
  const pc = (stream as { pc?: object }).pc;
  if (pc) made.pcs.push(new WeakRef(pc));
  // Drop the references to collected objects now and then, so the lists stay as small as what is alive.
  if (made.streams.length >= pruneAt) {
    prune();
    pruneAt = Math.max(1024, 2 * made.streams.length);
  }
}

function prune(): void {
  made.streams = made.streams.filter((r) => r.deref() !== undefined);
  made.pcs = made.pcs.filter((r) => r.deref() !== undefined);
}

const post = (m: FromWorker) => port.postMessage(m);

/** The kernel's id of this thread (for per-thread CPU in /proc), or -1 off Linux. */
function osThreadId(): number {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return -1;
  }
}

function trackInfo(up: UpStream): TrackInfo[] {
  return up.tracks.map((t) => ({ id: t.id, kind: t.kind, codec: t.codec, parameters: t.parameters, layers: [...t.layers] }));
}

/** Sends the up-stream's tracks when they changed (a new track, codec or simulcast layer). */
function syncTracks(h: number, up: UpStream, added: string[] = []): TrackInfo[] {
  const tracks = trackInfo(up);
  const json = JSON.stringify(tracks);
  if (added.length > 0 || sentTracks.get(h) !== json) {
    sentTracks.set(h, json);
    post({ ev: 'tracks', h, tracks, added });
  }
  return tracks;
}

function createUp(m: Extract<ToWorker, { op: 'createUp' }>): void {
  let up: UpStream;
  try {
    up = engine.createUpStream({ id: m.id, label: m.label, iceServers: m.iceServers, ...(m.codecs ? { codecs: m.codecs } : {}), ...(m.resume ? { resume: m.resume } : {}) } as Parameters<
      MediaEngine['createUpStream']
    >[0]);
  } catch (e) {
    post({ ev: 'close', h: m.h, error: (e as Error).message });
    return;
  }
  ups.set(m.h, up);
  remember(up);
  reportSrtp(m.h, up);
  up.on('candidate', (candidate) => post({ ev: 'candidate', h: m.h, candidate }));
  up.on('track', (t) => syncTracks(m.h, up, [t.id]));
  up.on('state', (state) => {
    if (state !== 'closed') syncTracks(m.h, up);
    post({ ev: 'state', h: m.h, state });
  });
  up.on('close', () => {
    ups.delete(m.h);
    sentTracks.delete(m.h);
    srtpReported.delete(m.h);
    post({ ev: 'close', h: m.h });
  });
  // Simulcast layers can appear after the answer (werift's onTrack per rid).
  const pc = (up as { pc?: { onTrack?: { subscribe(f: () => void): unknown } } }).pc;
  pc?.onTrack?.subscribe(() => {
    setImmediate(() => {
      if (ups.get(m.h) === up) syncTracks(m.h, up);
    });
  });
}

/** Native streams: the keys once keyed, then the plane's SRTP state while it changes (see 'srtp' in protocol.ts). */
const srtpReported = new Map<number, { link: NativeLink; stream: object; last: string }>();
function reportSrtp(h: number, stream: UpStream | DownStream): void {
  const link = (stream as { link?: NativeLink }).link;
  if (!link || setup.kind !== 'native') return;
  const entry = { link, stream, last: '' };
  link.onKeyed = () => {
    const state = link.srtpState() ?? [];
    entry.last = state.join(',');
    if (srtpReported.get(h) === entry && link.keys) post({ ev: 'srtp', h, keys: link.keys, state });
  };
  srtpReported.set(h, entry);
}
const SRTP_REPORT_MS = 1000;
if (setup.kind === 'native') {
  setInterval(() => {
    for (const [h, e] of srtpReported) {
      if (ups.get(h) !== e.stream && downs.get(h) !== e.stream) {
        srtpReported.delete(h);
        continue;
      }
      const state = e.link.srtpState();
      if (!state) continue;
      const key = state.join(',');
      if (key === e.last) continue;
      e.last = key;
      post({ ev: 'srtp', h, state });
    }
  }, SRTP_REPORT_MS).unref();
}

function createSource(m: Extract<ToWorker, { op: 'createSource' }>): void {
  let source: SourceStream;
  try {
    source = engine.createSourceStream({ id: m.id, label: m.label, tracks: m.tracks });
  } catch (e) {
    post({ ev: 'close', h: m.h, error: (e as Error).message });
    return;
  }
  const up = source.up;
  ups.set(m.h, up);
  sources.set(m.h, source);
  remember(up);
  source.on('keyframe', (track, layer) => post({ ev: 'keyframe', h: m.h, track, layer }));
  up.on('close', () => {
    ups.delete(m.h);
    sources.delete(m.h);
    sentTracks.delete(m.h);
    post({ ev: 'close', h: m.h });
  });
}

function write(m: Extract<ToWorker, { op: 'write' }>): void {
  const source = sources.get(m.h);
  if (source) {
    // one write per run of packets of the same track
    const packets = unpackPackets(m.batch);
    let start = 0;
    for (let i = 1; i <= packets.length; i++) {
      if (i < packets.length && packets[i]!.track === packets[start]!.track) continue;
      const track = m.tracks[packets[start]!.track];
      if (track !== undefined) source.write(track, packets.slice(start, i));
      start = i;
    }
  }
  post({ ev: 'written', h: m.h });
}

/** A tap whose sink is the main thread: each batch is packed and posted, and the next waits for its ack. */
function attachTap(m: Extract<ToWorker, { op: 'tap' }>): void {
  const track = ups.get(m.h)?.tracks.find((t) => t.id === m.track);
  if (!track) {
    post({ ev: 'tapEnd', tap: m.tap, reason: 'ended' });
    return;
  }
  const entry: { tap: TrackTap | undefined; ack: (() => void) | undefined } = { tap: undefined, ack: undefined };
  const end = (reason: TapEnd) => {
    if (taps.get(m.tap) === entry) taps.delete(m.tap);
    entry.ack = undefined;
    post({ ev: 'tapEnd', tap: m.tap, reason });
  };
  try {
    entry.tap = track.attach(
      {
        packets: (batch: PacketBatch) =>
          new Promise<void>((resolve) => {
            entry.ack = resolve;
            const buffer = packPackets(batch.packets);
            port.postMessage({ ev: 'packets', tap: m.tap, batch: buffer, reports: [...batch.senderReports], dropped: batch.dropped } satisfies FromWorker, [buffer]);
          }),
        end,
      },
      {
        ...(m.layers ? { layers: m.layers } : {}),
        ...(m.maxQueuedBytes !== undefined ? { maxQueuedBytes: m.maxQueuedBytes } : {}),
        ...(m.maxDelayMs !== undefined ? { maxDelayMs: m.maxDelayMs } : {}),
      },
    );
  } catch {
    post({ ev: 'tapEnd', tap: m.tap, reason: 'ended' });
    return;
  }
  taps.set(m.tap, entry as { tap: TrackTap; ack: (() => void) | undefined });
}

function createDown(m: Extract<ToWorker, { op: 'createDown' }>): void {
  const source = ups.get(m.source);
  if (!source) {
    post({ ev: 'close', h: m.h, error: `down-stream ${m.id}: its source up-stream is closed` });
    return;
  }
  let down: DownStream;
  try {
    down = engine.createDownStream({ id: m.id, source, request: m.request, iceServers: m.iceServers, ...(m.resume ? { resume: m.resume } : {}) } as Parameters<MediaEngine['createDownStream']>[0]);
  } catch (e) {
    post({ ev: 'close', h: m.h, error: (e as Error).message });
    return;
  }
  downs.set(m.h, down);
  remember(down);
  reportSrtp(m.h, down);
  down.on('candidate', (candidate) => post({ ev: 'candidate', h: m.h, candidate }));
  down.on('state', (state) => post({ ev: 'state', h: m.h, state }));
  down.on('renegotiate', () => post({ ev: 'renegotiate', h: m.h }));
  down.on('close', () => {
    downs.delete(m.h);
    srtpReported.delete(m.h);
    post({ ev: 'close', h: m.h });
  });
}

async function call(h: number, method: CallMethod, args: unknown[]): Promise<unknown> {
  const up = ups.get(h);
  const down = downs.get(h);
  if (up) {
    switch (method) {
      case 'answer': {
        const sdp = await up.answer(args[0] as string);
        return { sdp, tracks: ups.get(h) === up ? syncTracks(h, up) : trackInfo(up) };
      }
      case 'addIceCandidate':
        return up.addIceCandidate(args[0] as IceCandidate | null);
      case 'stats':
        return up.stats();
    }
  } else if (down) {
    switch (method) {
      case 'offer':
        return down.offer(args[0] as { iceRestart?: boolean } | undefined);
      case 'answer':
        return down.answer(args[0] as string);
      case 'setAnswer':
        return down.setAnswer(args[0] as string);
      case 'addIceCandidate':
        return down.addIceCandidate(args[0] as IceCandidate | null);
      case 'stats':
        return down.stats();
    }
  } else {
    throw new Error(GONE);
  }
  throw new Error(`media worker: ${method} is not a method of this stream`);
}

let gc: (() => void) | undefined;
function collectGarbage(): void {
  if (!gc) {
    gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    }
  }
  gc();
}

async function probe(withGc: boolean): Promise<WorkerProbe> {
  if (withGc) {
    // Several rounds: WeakRefs hold their targets until the job ends, and closures freed by one GC free more.
    for (let i = 0; i < 4; i++) {
      collectGarbage();
      await new Promise((r) => setImmediate(r));
    }
  }
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  const heap = getHeapStatistics();
  prune();
  return {
    tid: osThreadId(),
    ups: ups.size,
    downs: downs.size,
    resources,
    heapUsed: heap.used_heap_size,
    external: heap.external_memory,
    alive: { streams: made.streams.length, peerConnections: made.pcs.length },
  };
}

port.on('message', (m: ToWorker) => {
  switch (m.op) {
    case 'createUp':
      return createUp(m);
    case 'createDown':
      return createDown(m);
    case 'createSource':
      return createSource(m);
    case 'write':
      return write(m);
    case 'tap':
      return attachTap(m);
    case 'tapLayers':
      taps.get(m.tap)?.tap.setLayers(m.layers);
      return;
    case 'tapKeyframe':
      taps.get(m.tap)?.tap.requestKeyframe(m.layer);
      return;
    case 'tapAck': {
      const entry = taps.get(m.tap);
      const ack = entry?.ack;
      if (entry) entry.ack = undefined;
      ack?.();
      return;
    }
    case 'untap':
      // the main thread has ended its sink already; 'detached' comes back and is ignored there
      taps.get(m.tap)?.tap.detach();
      return;
    case 'call':
      call(m.h, m.method, m.args).then(
        (value) => post({ ev: 'reply', rid: m.rid, ok: true, value }),
        (e: unknown) => post({ ev: 'reply', rid: m.rid, ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    case 'setRequest':
      downs.get(m.h)?.setRequest(m.request);
      return;
    case 'requestKeyframe':
      ups.get(m.h)?.requestKeyframe();
      return;
    case 'close':
      (sources.get(m.h) ?? ups.get(m.h) ?? downs.get(m.h))?.close();
      return;
    case 'probe':
      void probe(m.gc).then((value) => post({ ev: 'probe', rid: m.rid, value }));
      return;
    case 'closeAll':
      engine.close();
      // Let werift send its DTLS close alerts before the thread is terminated.
      setTimeout(() => post({ ev: 'reply', rid: m.rid, ok: true, value: null }), 20);
      return;
    case 'crash':
      setTimeout(() => {
        throw new Error(m.message);
      });
      return;
    case 'fault': {
      const load = loadNativeAddon();
      if (load.ok) setTimeout(() => load.addon.faultForTest());
      return;
    }
  }
});

if (setup.kind === 'native') {
  const dtls = await certificate();
  post({ ev: 'ready', tid: osThreadId(), pid: process.pid, dtls });
} else post({ ev: 'ready', tid: osThreadId(), pid: process.pid });
