// The hot send path of a down-stream, beside werift's: RTP header bytes,
// SRTP (srtp.ts) and one sendmsg on the UDP socket werift's ICE nominated.
//
// werift 0.24.4 object path (checked against its lib/):
//   RTCDtlsTransport.iceTransport (RTCIceTransport).connection (ice Connection)
//     .nominated (CandidatePair: .remoteAddr [host, port], .packetsSent, .bytesSent)
//     .protocol (StunProtocol, type 'stun'; TURN relays are 'turn')
//     .transport (UdpTransport, type 'udp', .closed) .socket (node:dgram Socket)
//   RTCDtlsTransport.srtp (SrtpSession) .localContext (SrtpContext: profile,
//     srtpSessionKey/Salt/AuthTag, getSrtpSsrcState(ssrc))
// Anything else (TURN, TCP, an unknown profile, no SRTP yet): `FastRtpSender.send`
// returns -1 and the caller uses werift's own send.
import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { SrtpProtector, rolloverFor, type SrtpSsrcState, type WeriftSrtpContext } from './srtp.ts';

/** Receive buffer for a publisher's socket: bursts arrive while the loop fans out (the default ~208 KB overflowed). */
export const UP_RECV_BUFFER = 4 << 20;
/** Receive buffer for a subscriber's socket (feedback only) and send buffer of both. */
export const DOWN_RECV_BUFFER = 1 << 20;
export const SEND_BUFFER = 1 << 20;

interface UdpTransportLike {
  type?: string;
  closed?: boolean;
  socket?: Socket;
}
interface PairLike {
  protocol?: { type?: string; transport?: UdpTransportLike };
  remoteAddr: [string, number];
  packetsSent?: number;
  bytesSent?: number;
}
interface ConnectionLike {
  nominated?: PairLike;
  canSendApplicationData?: () => boolean;
}
/** The parts of werift's RTCDtlsTransport used here. */
export interface DtlsTransportLike {
  state: string;
  iceTransport?: { connection?: ConnectionLike };
  srtp?: { localContext?: WeriftSrtpContext };
  bytesSent?: number;
  packetsSent?: number;
  transportSequenceNumber: number;
}

/** The dgram socket of the nominated pair, when it is plain UDP (not TURN, not TCP). */
export function nominatedSocket(dtls: DtlsTransportLike | undefined): { pair: PairLike; socket: Socket } | undefined {
  const pair = dtls?.iceTransport?.connection?.nominated;
  const t = pair?.protocol?.type === 'stun' ? pair.protocol.transport : undefined;
  if (!pair || !t || t.type !== 'udp' || !t.socket) return undefined;
  return { pair, socket: t.socket };
}

const raised = new WeakSet<Socket>();

/** Raises the kernel buffers of the nominated socket (once per socket); returns the receive buffer size now in effect, or 0. */
export function raiseSocketBuffers(dtls: DtlsTransportLike | undefined, recvBytes: number, sendBytes = SEND_BUFFER): number {
  const s = nominatedSocket(dtls)?.socket;
  if (!s) return 0;
  try {
    if (!raised.has(s)) {
      raised.add(s);
      // capped by net.core.rmem_max / wmem_max (the kernel doubles what it grants)
      if (s.getRecvBufferSize() < recvBytes) s.setRecvBufferSize(recvBytes);
      if (s.getSendBufferSize() < sendBytes) s.setSendBufferSize(sendBytes);
    }
    return s.getRecvBufferSize();
  } catch {
    return 0; // closed or not bound
  }
}

/** Transport-level state of the fast path for one bundled transport (one down-stream). */
export class FastRtpSender {
  #srtpSession: unknown;
  #protector: SrtpProtector | undefined;
  #context: WeriftSrtpContext | undefined;
  #pair: PairLike | undefined;
  #socket: Socket | undefined;
  #udp: UdpTransportLike | undefined;
  #port = 0;
  #ip = '';
  /** Per SSRC: werift's SRTP state object, re-read when the SRTP session changes. */
  #states = new Map<number, SrtpSsrcState>();

  constructor(
    readonly dtls: DtlsTransportLike,
    /** Receive buffer to give the socket once routed. */
    readonly recvBuffer = DOWN_RECV_BUFFER,
  ) {}

  /** The session's protector, rebuilt when werift starts a new SRTP session (DTLS restart). */
  #srtp(): SrtpProtector | undefined {
    const session = this.dtls.srtp;
    if (session !== this.#srtpSession) {
      this.#srtpSession = session;
      this.#context = session?.localContext;
      this.#protector = SrtpProtector.fromWerift(this.#context);
      this.#states.clear();
    }
    return this.#protector;
  }

  /** False when the nominated pair cannot be sent on directly (TURN, TCP, none). */
  #route(): boolean {
    const pair = this.dtls.iceTransport?.connection?.nominated;
    if (pair === this.#pair) return this.#socket !== undefined;
    this.#pair = pair;
    this.#socket = undefined;
    const found = nominatedSocket(this.dtls);
    if (!found) return false;
    const [ip, port] = found.pair.remoteAddr;
    if (!isIP(ip) || !port) return false;
    this.#udp = found.pair.protocol!.transport;
    this.#socket = found.socket;
    this.#ip = ip;
    this.#port = port;
    raiseSocketBuffers(this.dtls, this.recvBuffer);
    return true;
  }

  /** True when this path can send now (SRTP keys of a known profile and a plain UDP pair). */
  get usable(): boolean {
    return this.dtls.state === 'connected' && this.#srtp() !== undefined && this.#route();
  }

  /**
   * Protects and sends one RTP packet whose header is in `header` (a fresh
   * buffer: the datagram keeps it until the kernel took it). Returns the
   * bytes sent, 0 when ICE has no consent to send (dropped, as werift would),
   * -1 when this path cannot serve it (the caller falls back to werift).
   */
  send(header: Buffer, payload: Buffer, ssrc: number, seq: number): number {
    if (this.dtls.state !== 'connected') return -1;
    const protector = this.#srtp();
    if (!protector || !this.#route() || this.#udp!.closed) return -1;
    const connection = this.dtls.iceTransport!.connection!;
    if (connection.canSendApplicationData && !connection.canSendApplicationData()) return 0;
    let state = this.#states.get(ssrc);
    if (!state) {
      state = this.#context!.getSrtpSsrcState(ssrc);
      this.#states.set(ssrc, state);
    }
    const roc = rolloverFor(state, seq);
    const parts = protector.protect(header, payload, ssrc, seq, roc);
    const size = header.length + parts[1].length + parts[2].length;
    this.#socket!.send(parts, this.#port, this.#ip);
    const pair = this.#pair!;
    if (pair.packetsSent !== undefined) pair.packetsSent++;
    if (pair.bytesSent !== undefined) pair.bytesSent += size;
    if (this.dtls.packetsSent !== undefined) this.dtls.packetsSent++;
    if (this.dtls.bytesSent !== undefined) this.dtls.bytesSent += size;
    return size;
  }
}
