// Runs in the browser page (bundled by bundle.ts): one mesh endpoint made
// with Atrium's mesh SDK, driven by the tests through `window.mesh`. It does
// what an application would (publish the camera, open data channels, add
// tracks) and reports what a user would see (frames decoded, messages in
// order, who is connected) plus the negotiation state the glare test checks.
import { io } from 'socket.io-client';
import { CamusSignaling, type CloseReason, type ManagedConnection, Pool, RtcPoolSocketIo, RtcPoolWebSocket, type SignalingChannel } from '../../../../client/src/mesh/index.ts';

export type Protocol = 'camus' | 'rtcpool-ws' | 'rtcpool-sio';

export interface StartOptions {
  protocol: Protocol;
  server: string;
  room: string;
  token?: string;
  username?: string;
}

export interface PeerNegotiation {
  signalingState: RTCSignalingState;
  connectionState: RTCPeerConnectionState;
  transceivers: number;
  /** Senders (one per transceiver we made or were offered). */
  senders: number;
  /** Transceivers whose negotiated direction sends. */
  sending: number;
  /** Transceivers whose negotiated direction receives. */
  receiving: number;
  /** `track` events so far. */
  trackEvents: number;
  polite: boolean;
  collisions: number;
  rollbacks: number;
  ignoredOffers: number;
  offersSent: number;
  /** `track` events the SDK had to emit because the browser skipped them. */
  lateTrackEvents: number;
}

export interface Harness {
  start(o: StartOptions): Promise<string>;
  id(): string | null;
  peers(): string[];
  closed(): { id: string; reason: CloseReason }[];
  roster(): string[] | null;
  description(id: string): unknown;
  connectionStates(): Record<string, RTCPeerConnectionState>;
  publishCamera(): Promise<void>;
  framesDecoded(): Promise<Record<string, number>>;
  openChannels(label: string, count: number): Promise<void>;
  received(label: string): Record<string, string[]>;
  addAudioAt(at: number): Promise<void>;
  negotiation(): Record<string, PeerNegotiation>;
  /** Per transceiver: mid, directions, and whether a track event came for its receiver. */
  transceivers(): Record<string, string[]>;
  /** Restarts ICE on every connection; resolves with the local ICE ufrag of each before. */
  restartIce(): Promise<Record<string, string>>;
  iceUfrags(): Promise<Record<string, string>>;
  leave(): void;
  errors(): string[];
}

let pool: Pool<SignalingChannel> | undefined;
let camus: CamusSignaling | undefined;
let lastRoster: string[] | null = null;
const closedPeers: { id: string; reason: CloseReason }[] = [];
const errors: string[] = [];
const trackEvents = new Map<string, number>();
const trackIds = new Set<string>();
/** label -> peer -> messages in arrival order. */
const inbox = new Map<string, Map<string, string[]>>();
let audioSource: MediaStreamTrack | undefined;

function need(): Pool<SignalingChannel> {
  if (!pool) throw new Error('start() first');
  return pool;
}

function record(conn: ManagedConnection, channel: RTCDataChannel): void {
  let byPeer = inbox.get(channel.label);
  if (!byPeer) inbox.set(channel.label, (byPeer = new Map()));
  const log: string[] = byPeer.get(conn.id) ?? [];
  byPeer.set(conn.id, log);
  channel.addEventListener('message', (e: MessageEvent) => log.push(String(e.data)));
}

const harness: Harness = {
  async start(o) {
    let signaling: SignalingChannel;
    if (o.protocol === 'camus') {
      camus = new CamusSignaling(o.server, { token: o.token, username: o.username });
      camus.on('roster', (info) => (lastRoster = info.clients.map((c) => c.id)));
      signaling = camus;
    } else if (o.protocol === 'rtcpool-ws') {
      signaling = new RtcPoolWebSocket(o.server, { token: o.token });
    } else {
      const socket = io(o.server, { transports: ['websocket'], reconnection: false, forceNew: true, auth: o.token ? { token: o.token } : {} });
      signaling = new RtcPoolSocketIo(socket);
    }
    pool = new Pool(signaling);
    pool.on('track', (conn, t) => {
      trackEvents.set(conn.id, (trackEvents.get(conn.id) ?? 0) + 1);
      trackIds.add(t.track.id);
    });
    pool.on('datachannel', (conn, channel) => record(conn, channel));
    pool.on('close', (conn, reason) => closedPeers.push({ id: conn.id, reason }));
    pool.on('error', (e, conn) => errors.push(`${e.code}${conn ? ` (${conn.id})` : ''}: ${e.message}`));
    const info = await pool.join(o.room);
    return info.id;
  },

  id: () => pool?.id ?? null,
  peers: () => need().connections.map((c) => c.id),
  closed: () => [...closedPeers],
  roster: () => lastRoster,
  description: (id) => need().getDescription(id) ?? '(unknown peer)',
  connectionStates: () => Object.fromEntries(need().connections.map((c) => [c.id, c.connectionState])),

  async publishCamera() {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240, frameRate: 15 }, audio: false });
    for (const track of stream.getTracks()) need().publish(track, stream);
  },

  async framesDecoded() {
    const out: Record<string, number> = {};
    for (const conn of need().connections) {
      let frames = 0;
      (await conn.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      });
      out[conn.id] = frames;
    }
    return out;
  },

  async openChannels(label, count) {
    // One channel to every peer; each sends `count` numbered messages as soon as it opens.
    await Promise.all(
      need().connections.map(async (conn) => {
        const channel = await conn.openDataChannel(label);
        for (let i = 0; i < count; i++) channel.send(String(i));
      }),
    );
  },

  received(label) {
    return Object.fromEntries(inbox.get(label) ?? []);
  },

  async addAudioAt(at) {
    if (!audioSource) {
      const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      audioSource = s.getAudioTracks()[0]!;
    }
    const source = audioSource;
    const conns = need().connections;
    // What earlier rounds added stays negotiated but stops sending (no
    // renegotiation), so the machine does not encode fifty audio tracks.
    await Promise.all(
      conns.flatMap((conn) =>
        conn.getSenders().map(async (s) => {
          const t = s.track;
          if (!t) return;
          await s.replaceTrack(null);
          t.stop();
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
    for (const conn of conns) conn.addTrack(source.clone());
  },

  negotiation() {
    const out: Record<string, PeerNegotiation> = {};
    for (const conn of need().connections) {
      const ts = conn.getTransceivers();
      const n = conn.negotiation;
      out[conn.id] = {
        signalingState: conn.signalingState,
        connectionState: conn.connectionState,
        transceivers: ts.length,
        senders: conn.getSenders().length,
        sending: ts.filter((t) => t.currentDirection === 'sendrecv' || t.currentDirection === 'sendonly').length,
        receiving: ts.filter((t) => t.currentDirection === 'sendrecv' || t.currentDirection === 'recvonly').length,
        trackEvents: trackEvents.get(conn.id) ?? 0,
        polite: conn.polite,
        collisions: n.collisions,
        rollbacks: n.rollbacks,
        ignoredOffers: n.ignoredOffers,
        offersSent: n.offersSent,
        lateTrackEvents: conn.lateTrackEvents,
      };
    }
    return out;
  },

  transceivers() {
    return Object.fromEntries(
      need().connections.map((c) => [c.id, c.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}${trackIds.has(t.receiver.track.id) ? '' : ' (no track event)'}`)]),
    );
  },

  async restartIce() {
    const before = await harness.iceUfrags();
    for (const conn of need().connections) conn.restartIce();
    return before;
  },

  async iceUfrags() {
    const out: Record<string, string> = {};
    for (const conn of need().connections) {
      (await conn.getStats()).forEach((s: { type: string; iceLocalUsernameFragment?: string }) => {
        if (s.type === 'transport' && s.iceLocalUsernameFragment) out[conn.id] = s.iceLocalUsernameFragment;
      });
    }
    return out;
  },

  leave: () => need().close(),
  errors: () => [...errors],
};

(window as unknown as { mesh: Harness }).mesh = harness;
