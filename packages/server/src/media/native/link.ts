// Hands one peer connection's bundled transport to the packet plane once
// werift's DTLS is done: the plane gets the SRTP master keys (DTLS-SRTP
// exporter) and the nominated remote address; werift keeps ICE (checks,
// consent) and DTLS, and every RTCP werift would send (sender reports,
// keyframe requests) goes through the plane's SRTCP instead of werift's.
//
// A transport can also be *resumed* on a replacement worker (the previous one
// died): every media worker process of a slot uses the same DTLS certificate
// (pool.ts), so when the peer restarts ICE towards the new worker its DTLS
// association — and its SRTP keys — stay as they were. The new link then
// takes the keys the old worker reported (SrtpResume) as soon as ICE has a
// nominated pair, without a DTLS handshake, and continues the SRTP state
// (SRTCP numbering, the peer's rollover counters) from the last report.
import type { RTCPeerConnection } from 'werift';
import type { Plane } from './addon.ts';
import { type Mux, type MuxSession, MuxTransport } from './mux.ts';

interface PairLike {
  remoteAddr: [string, number];
  protocol: { type?: string; transport?: unknown };
}
interface ConnectionLike {
  nominated?: PairLike;
}
interface DtlsLike {
  state: string;
  onStateChange: { subscribe(f: (state: string) => void): unknown };
  iceTransport: { connection: ConnectionLike };
  dtls?: { srtp: { srtpProfile?: number }; extractSessionKeys(keyLength: number, saltLength: number): { localKey: Buffer; localSalt: Buffer; remoteKey: Buffer; remoteSalt: Buffer } };
  sendRtcp: (packets: { serialize(): Buffer }[]) => Promise<void>;
  sendRtp: (...args: unknown[]) => Promise<number>;
}

/** What a replacement worker needs to continue a transport: the DTLS-SRTP keys and the plane's last srtpState. */
export interface SrtpResume {
  profile: number;
  localKey: Uint8Array;
  localSalt: Uint8Array;
  remoteKey: Uint8Array;
  remoteSalt: Uint8Array;
  state: number[];
}

/**
 * The peer's ICE candidates for a resumed transport, without Chromium's
 * `generation N` (its count of its own ICE restarts, 1 or more after the
 * restart towards the replacement worker): werift compares that number with
 * its own agent's generation (0 on a fresh peer connection) and never
 * nominates a pair whose remote candidate differs, so ICE would stay in
 * "checking". Applied to trickled candidates and to the SDP's a=candidate lines.
 */
export function withoutGeneration(text: string): string {
  return text.replace(/ generation \d+/g, '');
}

/** SRTCP packets a stream may have sent between its last state report and its worker's death (reports come every second). */
const RTCP_MARGIN = 4096;

export const PROFILE_AES128_CM_HMAC_SHA1_80 = 1;
export const PROFILE_AEAD_AES128_GCM = 7;

export class NativeLink {
  session: MuxSession | undefined;
  keyed = false;
  /** The SRTP profile DTLS chose (7 GCM, 1 AES-CM), once keyed. */
  profile = 0;
  #dtls: DtlsLike | undefined;
  #remote = '';
  /** The keys of this transport, once keyed (reported to the server so a replacement worker can resume it). */
  keys: Omit<SrtpResume, 'state'> | undefined;
  /** Set: this transport continues one of a dead worker's (see resumePending). */
  resume: SrtpResume | undefined;
  /** Called once keyed, with or without a DTLS handshake. */
  onKeyed: (() => void) | undefined;

  constructor(
    readonly mux: Mux,
    readonly pc: RTCPeerConnection,
    /** Called when the plane session is known, just before its keys are set (and media starts): make the tracks now. */
    private readonly onSession: () => void,
    /** The transport cannot be forwarded natively (a TURN relay or IPv6 pair was chosen, or the keys were refused). */
    private readonly onUnusable: (why: string) => void,
  ) {}

  /** ip:port media goes to ('' before the hand-over). */
  get remote(): string {
    return this.#remote;
  }

  get plane(): Plane {
    return this.mux.plane;
  }

  /** Takes over werift's RTCP sending on the bundled transport (call after each set*Description). */
  hook(): void {
    const dtls = (this.pc as unknown as { dtlsTransports: DtlsLike[] }).dtlsTransports?.[0];
    if (!dtls || dtls === this.#dtls) return;
    this.#dtls = dtls;
    dtls.sendRtcp = async (packets) => {
      if (!this.keyed || !this.session) return;
      const buf = packets.length === 1 ? packets[0]!.serialize() : Buffer.concat(packets.map((p) => p.serialize()));
      this.plane.sendRtcp(this.session.id, buf);
    };
    // every RTP packet of this peer connection leaves through the plane
    dtls.sendRtp = async () => 0;
    dtls.onStateChange.subscribe((state) => {
      if (state === 'connected' && dtls === this.#dtls && !this.keyed) this.#takeOver(dtls);
    });
    if (dtls.state === 'connected' && !this.keyed) this.#takeOver(dtls);
  }

  /** A resumed transport waits for ICE only: true once it has taken the saved keys (call from the engine's timer). */
  resumePending(): boolean {
    const dtls = this.#dtls;
    if (!this.resume || this.keyed || !dtls?.iceTransport.connection.nominated) return false;
    this.#takeOver(dtls);
    return this.keyed;
  }

  /** The plane's SRTP state for a replacement worker (undefined before the keys). */
  srtpState(): number[] | undefined {
    if (!this.keyed || !this.session) return undefined;
    const st = this.plane.srtpState(this.session.id);
    return st ? [...st] : undefined;
  }

  #takeOver(dtls: DtlsLike): void {
    const connection = dtls.iceTransport.connection;
    const session = this.mux.findSession(connection as never);
    const pair = connection.nominated;
    if (!session || !pair || !(pair.protocol.transport instanceof MuxTransport)) {
      this.onUnusable(
        pair?.protocol.type === 'turn'
          ? 'ICE chose a TURN relay, which the native media engine does not forward (use --media-engine js for relayed media)'
          : 'ICE chose a pair outside the media socket (IPv6?), which the native media engine does not forward',
      );
      return;
    }
    const resume = this.resume;
    const profile = resume ? resume.profile : dtls.dtls?.srtp.srtpProfile;
    if (profile !== PROFILE_AEAD_AES128_GCM && profile !== PROFILE_AES128_CM_HMAC_SHA1_80) {
      this.onUnusable(`DTLS chose SRTP profile ${profile}, which the native media engine does not implement`);
      return;
    }
    const keys = resume ?? dtls.dtls!.extractSessionKeys(16, profile === PROFILE_AEAD_AES128_GCM ? 12 : 14);
    this.session = session;
    this.#setRemote(pair);
    this.onSession();
    const b = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    if (!this.plane.setKeys(session.id, profile, b(keys.localKey), b(keys.localSalt), b(keys.remoteKey), b(keys.remoteSalt))) {
      this.onUnusable('the packet plane refused the SRTP keys');
      return;
    }
    if (resume && !this.plane.resumeSrtp(session.id, Uint32Array.from(resume.state), RTCP_MARGIN)) {
      this.onUnusable('the packet plane refused the SRTP state of the previous worker');
      return;
    }
    this.profile = profile;
    this.keys = { profile, localKey: Buffer.from(keys.localKey), localSalt: Buffer.from(keys.localSalt), remoteKey: Buffer.from(keys.remoteKey), remoteSalt: Buffer.from(keys.remoteSalt) };
    this.keyed = true;
    this.onKeyed?.();
  }

  #setRemote(pair: PairLike): void {
    const [ip, port] = pair.remoteAddr;
    const key = `${ip}:${port}`;
    if (key === this.#remote || !this.session) return;
    this.#remote = key;
    this.plane.setRemote(this.session.id, ip, port);
  }

  /** Follows ICE when it moves to another pair (called from the engine's timer). */
  tick(): void {
    if (!this.keyed || !this.#dtls) return;
    const pair = this.#dtls.iceTransport.connection.nominated;
    if (pair && pair.protocol.transport instanceof MuxTransport) this.#setRemote(pair);
  }

  sendRtcp(rtcp: Buffer): void {
    if (this.keyed && this.session) this.plane.sendRtcp(this.session.id, rtcp);
  }

  close(): void {
    this.keyed = false;
    // every ICE agent of the peer connection that gathered on the media socket, keyed or not
    const ice = (this.pc as unknown as { iceTransports?: { connection: unknown }[] }).iceTransports ?? [];
    for (const t of ice) {
      const s = this.mux.findSession(t.connection as never);
      if (s) this.mux.closeSession(s);
    }
    if (this.session) this.mux.closeSession(this.session);
    this.session = undefined;
  }
}
