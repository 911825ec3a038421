// Faster DTLS set-up with werift 0.24, for both media engines (applied by
// our code to werift's objects: no fork). Two things cost a subscriber about
// a second before its first frame:
//
// 1. werift's DTLS *client* waits 100 ms before its first flight and then
//    retransmits a lost flight after 500 ms, 1 s, 1.5 s… So the server takes
//    the DTLS *server* role wherever the offer/answer lets it: it offers
//    actpass for down-streams (the browser answers active) and, answering a
//    publisher's actpass offer, says passive (preferDtlsServer). The browser's
//    client retransmits on its own, much shorter timer (WebRTC: 50 ms).
// 2. werift creates its DTLS server only once its own ICE checks succeed,
//    which is often after the browser (whose ICE finished first) has sent its
//    ClientHello: that packet was dropped, and the handshake waited for the
//    browser's retransmission. holdEarlyDtls keeps DTLS records that arrive
//    before werift's DTLS transport starts and hands them to it as it starts
//    (each record once: the others are retransmissions of the same flight).
//
// And one that costs a subscriber its stream on a busy machine: werift's DTLS
// server handles a *retransmitted* handshake flight as a new one (a second
// ClientHello runs its flight 4 again, with a new random and key share),
// after which its keys and transcript no longer match the browser's: the
// browser discards werift's Finished and waits in "connecting" forever.
// RFC 6347 §4.2.4 says what a retransmitted flight means: the peer missed
// our answer, so send that answer again. dedupeHandshake does that: a
// handshake record already seen is not passed to werift; werift's last
// flight is sent again instead.
import type { RTCPeerConnection } from 'werift';

/** Records kept per transport before its DTLS starts (a ClientHello is one or two). */
const MAX_HELD = 16;

interface EventLike<T extends unknown[]> {
  subscribe(f: (...args: T) => void): unknown;
  execute(...args: T): void;
}
interface DtlsTransportLike {
  state: string;
  role: string;
  onStateChange: EventLike<[string]>;
  iceTransport: { connection: { onData: EventLike<[Buffer]>; send: (data: Buffer) => Promise<void> } };
}

/** Content types (RFC 6347 §4.1): change_cipher_spec 20, handshake 22. */
const CCS = 20;
const HANDSHAKE = 22;
/** At most this many resends of the final flight, this far apart. */
const MAX_RESENDS = 8;
const RESEND_GAP_MS = 80;

const dtlsTransports = (pc: RTCPeerConnection): DtlsTransportLike[] => (pc as unknown as { dtlsTransports: DtlsTransportLike[] }).dtlsTransports ?? [];

/**
 * Before werift answers an offer: take the DTLS server role (answer
 * `a=setup:passive`) when the offer says actpass or active. An offer that
 * says passive keeps werift the client.
 */
export function preferDtlsServer(pc: RTCPeerConnection, offerSdp: string): void {
  const setups = [...offerSdp.matchAll(/^a=setup:(\w+)/gm)].map((m) => m[1]);
  if (setups.length === 0 || setups.some((s) => s === 'passive')) return;
  for (const t of dtlsTransports(pc)) if (t.state === 'new') t.role = 'server';
}

const hooked = new WeakSet<object>();

/**
 * Keeps DTLS records that arrive before each of the peer connection's DTLS
 * transports starts and replays them (each once) when it does; answers the
 * peer's retransmitted handshake flights with werift's last flight instead
 * of letting werift take them as new ones. Call after every
 * set*Description (new ICE transports or candidates may have appeared).
 */
export function holdEarlyDtls(pc: RTCPeerConnection): void {
  for (const t of dtlsTransports(pc)) {
    if (!hooked.has(t)) {
      hooked.add(t);
      hook(t);
    }
    dedupeHandshake(t);
  }
}

/** Per DTLS transport: the flight werift sent last, and the peer's handshake records seen. */
interface Flights {
  /** Our handshake records since the peer's last new handshake record: the flight it may be missing. */
  ours: Buffer[];
  peerSpoke: boolean;
  seen: Set<string>;
  resends: number;
  last: number;
  send: (data: Buffer) => Promise<void>;
}
const flights = new WeakMap<object, Flights>();

function hook(t: DtlsTransportLike): void {
  const connection = t.iceTransport.connection;
  const send = connection.send.bind(connection);
  const f: Flights = { ours: [], peerSpoke: false, seen: new Set(), resends: 0, last: 0, send };
  flights.set(t, f);
  connection.send = async (data: Buffer) => {
    if (data.length > 0 && (data[0] === CCS || data[0] === HANDSHAKE)) {
      if (f.peerSpoke) f.ours = [];
      f.peerSpoke = false;
      if (f.ours.length < MAX_HELD) f.ours.push(data);
    }
    return send(data);
  };
  // a ClientHello can take two datagrams (a post-quantum key share): keep every distinct early record, in order
  const held = new Map<string, Buffer>();
  connection.onData.subscribe((data) => {
    if (t.state !== 'new' || !isDtls(data) || held.size >= MAX_HELD) return;
    const key = recordKey(data) ?? data.toString('base64');
    if (!held.has(key)) held.set(key, data);
  });
  t.onStateChange.subscribe((state) => {
    if (state !== 'connecting') return;
    // ICE is done: the agent's transports exist now; from here on werift sees each record once
    dedupeHandshake(t);
    for (const key of held.keys()) f.seen.add(key);
    const early = [...held.values()];
    held.clear();
    // werift makes its DTLS endpoint right after announcing "connecting": hand the records over once it exists
    if (early.length > 0)
      queueMicrotask(() => {
        for (const d of early) connection.onData.execute(d);
      });
  });
}

/** RFC 7983: DTLS records start with 20..63. */
const isDtls = (data: Buffer) => data.length > 0 && data[0]! >= 20 && data[0]! <= 63;
/**
 * What identifies a datagram across retransmissions: its first record
 * without the epoch and sequence number (bytes 3..10, new in every
 * retransmission). Only for a plaintext (epoch 0) first record — ClientHello,
 * Certificate, CCS…: an encrypted one differs every time it is sent.
 * Undefined when the datagram cannot be recognised so (it is passed on).
 */
function recordKey(data: Buffer): string | undefined {
  if (data.length < 13 || data[3] !== 0 || data[4] !== 0) return undefined;
  const end = 13 + data.readUInt16BE(11);
  if (end > data.length) return undefined;
  return Buffer.concat([data.subarray(0, 3), data.subarray(11, end)]).toString('base64');
}

/** Filters every transport of the ICE agent (werift's UDP sockets, or the native engine's mux transports). */
function dedupeHandshake(t: DtlsTransportLike): void {
  const f = flights.get(t);
  if (!f) return;
  const protocols = (t.iceTransport.connection as unknown as { protocols?: { transport?: { onData: (data: Buffer, addr: unknown) => void } }[] }).protocols ?? [];
  for (const p of protocols) {
    const transport = p.transport;
    if (!transport || filtered.has(transport)) continue;
    filtered.add(transport);
    const deliver = transport.onData;
    transport.onData = (data, addr) => {
      const key = data[0] === CCS || data[0] === HANDSHAKE ? recordKey(data) : undefined;
      if (key !== undefined) {
        if (f.seen.has(key)) {
          const now = Date.now();
          if (f.ours.length > 0 && f.resends < MAX_RESENDS && now - f.last >= RESEND_GAP_MS) {
            f.resends++;
            f.last = now;
            for (const d of f.ours) void f.send(d).catch(() => {});
          }
          return;
        }
        if (f.seen.size < 256) f.seen.add(key);
        f.peerSpoke = true;
      }
      deliver.call(transport, data, addr);
    };
  }
}
const filtered = new WeakSet<object>();
