// One UDP socket for every peer connection of a media worker, owned by the
// native packet plane. werift still runs ICE and DTLS: its host-candidate
// transports are replaced by MuxTransports that send through the plane and
// receive the STUN and DTLS datagrams the plane hands over; the plane keeps
// SRTP/SRTCP to itself once the DTLS keys are set (see engine.ts).
//
// Demultiplexing (as an ICE "UDP mux" does): a datagram from an address the
// plane knows carries its session; a STUN binding request from an unknown
// address names the ICE agent it is for in its USERNAME ("our-ufrag:theirs"),
// and the address is then bound to that agent's session. Addresses werift
// sends to are bound too (responses to our checks come from them).
//
// Who answers STUN binding requests, consent checks included (RFC 7675):
// werift, as before — the plane passes every STUN datagram to JavaScript in
// the same event-loop turn it arrives, and werift's responses leave through
// the same socket, so consent keeps working after the plane owns the socket.
//
// werift is patched here (once per process, affecting only the peer
// connections of a Mux): UdpTransport.init returns a MuxTransport for the
// host candidates ICE gathers (the first N inits of a
// Connection.getCandidatePromises call, N = its new host addresses) when the
// Connection was configured with the Mux's `marker` as its
// iceFilterStunResponse (a function that accepts every request). TURN and
// IPv6 transports keep their own sockets (their pairs cannot be forwarded
// natively; see link.ts).
import { Connection, UdpTransport, parseMessage } from 'werift';
import { type Datagram, type Plane, decodeDatagrams } from './addon.ts';

type Address = [string, number];

/** What werift's StunProtocol and ICE read and call on a transport. */
export class MuxTransport {
  readonly type = 'udp';
  readonly socketType = 'udp4';
  closed = false;
  onData: (data: Buffer, addr: Address) => void = () => {};
  rinfo: { address: string; port: number } | undefined;

  constructor(
    readonly mux: Mux,
    readonly session: MuxSession,
  ) {}

  get address(): { address: string; port: number; family: string } {
    return { address: '0.0.0.0', port: this.mux.port, family: 'IPv4' };
  }
  get host(): string {
    return '0.0.0.0';
  }
  get port(): number {
    return this.mux.port;
  }

  send = async (data: Buffer, addr?: Address): Promise<void> => {
    if (this.closed) return;
    const to = addr ?? (this.rinfo ? ([this.rinfo.address, this.rinfo.port] as Address) : undefined);
    if (!to) return;
    this.mux.plane.send(this.session.id, data, to[0], to[1]);
  };

  close = async (): Promise<void> => {
    this.closed = true;
    this.session.transports.delete(this);
  };

  deliver(d: Datagram): void {
    if (this.closed) return;
    this.rinfo = { address: d.ip, port: d.port };
    this.onData(d.data, [d.ip, d.port]);
  }
}

/** One ICE agent (a werift Connection: one bundled peer connection) and its plane session. */
export class MuxSession {
  readonly transports = new Set<MuxTransport>();
  closed = false;
  constructor(
    readonly id: number,
    readonly connection: Connection,
  ) {}

  /** The transport of the candidate the datagram was sent to (the one whose host address is `local`), else any. */
  transportFor(local: string): MuxTransport | undefined {
    let any: MuxTransport | undefined;
    for (const t of this.transports) {
      if (t.closed) continue;
      any ??= t;
      if (local && protocolsOf(this.connection).some((p) => p.transport === t && p.localIp === local)) return t;
    }
    return any;
  }
}

/** werift's Connection.protocols (private in its types): the local transports with their host address. */
const protocolsOf = (c: Connection) => (c as unknown as { protocols: { transport?: unknown; localIp?: string }[] }).protocols;

/** Each Mux by its marker function. */
const byMarker = new Map<unknown, Mux>();

export class Mux {
  readonly port: number;
  /** Pass as RTCPeerConnection's iceFilterStunResponse: its ICE agents then gather on this socket. */
  readonly marker = (): boolean => true;
  readonly #sessions = new Map<number, MuxSession>();
  readonly #byConnection = new WeakMap<Connection, MuxSession>();
  #closed = false;

  constructor(
    readonly plane: Plane,
    port: number,
  ) {
    this.port = port;
    install();
    byMarker.set(this.marker, this);
  }

  /** The session of an ICE agent, made on first use. */
  sessionOf(connection: Connection): MuxSession {
    let s = this.#byConnection.get(connection);
    if (!s || s.closed) {
      s = new MuxSession(this.plane.createSession(), connection);
      this.#byConnection.set(connection, s);
      this.#sessions.set(s.id, s);
    }
    return s;
  }

  /** The session of an ICE agent if it has one (it gathered host candidates here). */
  findSession(connection: Connection): MuxSession | undefined {
    const s = this.#byConnection.get(connection);
    return s && !s.closed ? s : undefined;
  }

  closeSession(s: MuxSession): void {
    if (s.closed) return;
    s.closed = true;
    for (const t of s.transports) t.closed = true;
    s.transports.clear();
    this.#sessions.delete(s.id);
    this.plane.closeSession(s.id);
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The plane's STUN/DTLS datagrams: to the right werift transport. */
  onDatagrams(buf: Buffer): void {
    if (this.#closed) return;
    decodeDatagrams(buf, (d) => {
      let s = d.session ? this.#sessions.get(d.session) : undefined;
      if (!s) {
        s = this.#byUsername(d.data);
        if (!s) {
          if (process.env.ATRIUM_NATIVE_DEBUG) console.error(`mux: datagram from ${d.ip}:${d.port} (first byte ${d.data[0]}) for no known session`);
          return;
        }
        if (!this.plane.bindAddress(s.id, d.ip, d.port) && process.env.ATRIUM_NATIVE_DEBUG) console.error(`mux: ${d.ip}:${d.port} belongs to another session than ${s.id}`);
      }
      if (process.env.ATRIUM_NATIVE_DEBUG) {
        const c = s.connection as unknown as { atriumIn?: number };
        c.atriumIn = (c.atriumIn ?? 0) + 1;
      }
      s.transportFor(d.local)?.deliver(d);
    });
  }

  /** A binding request names our ufrag first in USERNAME: the agent it is for. */
  #byUsername(data: Buffer): MuxSession | undefined {
    if (data.length < 20 || data[0]! > 3) return undefined;
    let ufrag: string | undefined;
    try {
      const m = parseMessage(data);
      const username = m?.getAttributeValue('USERNAME') as string | undefined;
      ufrag = username?.split(':')[0];
    } catch {
      return undefined;
    }
    if (!ufrag) return undefined;
    for (const s of this.#sessions.values()) if (s.connection.localUsername === ufrag) return s;
    return undefined;
  }

  close(): void {
    this.#closed = true;
    for (const s of [...this.#sessions.values()]) this.closeSession(s);
    this.plane.close();
    byMarker.delete(this.marker);
  }
}

// ---------------------------------------------------------------------------
// The werift patch

let installed = false;
/** The Connection gathering host candidates right now, and how many host transports it is about to make. */
let gathering: { connection: Connection; mux: Mux | undefined; left: number } | undefined;

function install(): void {
  if (installed) return;
  installed = true;
  const proto = Connection.prototype as unknown as { getCandidatePromises(addresses: string[], timeout?: number): unknown };
  const original = proto.getCandidatePromises;
  proto.getCandidatePromises = function (this: Connection, addresses: string[], timeout?: number) {
    const self = this as unknown as {
      protocols: { localIp?: string }[];
      options: { filterStunResponse?: unknown; forceTurn?: boolean; turnUsername?: string; turnPassword?: string };
      iceLite?: boolean;
      turnServer?: unknown;
    };
    // werift's own rule for which addresses get a new host transport (the rest already have one, or TURN only)
    const relayOnly = !self.iceLite && self.options.forceTurn && self.turnServer && self.options.turnUsername && self.options.turnPassword;
    const fresh = relayOnly ? 0 : addresses.filter((a) => !self.protocols.find((p) => p.localIp === a)).length;
    const previous = gathering;
    gathering = { connection: this, mux: byMarker.get(self.options.filterStunResponse), left: fresh };
    try {
      return original.call(this, addresses, timeout);
    } finally {
      gathering = previous;
    }
  };
  const udp = UdpTransport as unknown as { init(type: string, options?: unknown): Promise<unknown> };
  const init = udp.init;
  udp.init = function (this: unknown, type: string, options?: unknown) {
    const g = gathering;
    const mux = g?.mux;
    if (g && g.left > 0) {
      g.left--;
      if (type === 'udp4' && mux) {
        const s = mux.sessionOf(g.connection);
        const t = new MuxTransport(mux, s);
        s.transports.add(t);
        return Promise.resolve(t);
      }
    }
    return init.call(this, type, options);
  };
}
