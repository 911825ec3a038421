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
//    before werift's DTLS transport starts and hands them to it as it starts.
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
  iceTransport: { connection: { onData: EventLike<[Buffer]> } };
}

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

/** Keeps DTLS records that arrive before each of the peer connection's DTLS transports starts, and replays them when it does. */
export function holdEarlyDtls(pc: RTCPeerConnection): void {
  for (const t of dtlsTransports(pc)) {
    if (hooked.has(t)) continue;
    hooked.add(t);
    const connection = t.iceTransport.connection;
    let held: Buffer[] = [];
    connection.onData.subscribe((data) => {
      // RFC 7983: DTLS records start with 20..63
      if (t.state !== 'new' || held.length >= MAX_HELD || data.length === 0 || data[0]! < 20 || data[0]! > 63) return;
      held.push(data);
    });
    t.onStateChange.subscribe((state) => {
      if (state !== 'connecting' || held.length === 0) return;
      const early = held;
      held = [];
      // werift makes its DTLS endpoint right after announcing "connecting": hand the records over once it exists
      queueMicrotask(() => {
        for (const d of early) connection.onData.execute(d);
      });
    });
  }
}
