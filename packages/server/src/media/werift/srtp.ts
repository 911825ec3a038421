// Outgoing RTP without werift's per-packet objects: the header is written
// straight into bytes and SRTP-protected with the session keys werift
// derived for the transport (nothing is derived again).
//
//   AEAD_AES_128_GCM (RFC 7714):       IV = (00 00 || SSRC || ROC || SEQ) XOR salt[0..12],
//                                       AAD = the RTP header, 16-byte tag appended.
//   AES_CM_128_HMAC_SHA1_80 (RFC 3711): counter = (SSRC·2^64 XOR (ROC·2^16+SEQ)·2^16) XOR salt·2^16,
//                                       tag = HMAC-SHA1(auth key, header || ciphertext || ROC)[0..10].
import { createCipheriv, createHmac, createSecretKey, type KeyObject } from 'node:crypto';

export const PROFILE_AES128_CM_HMAC_SHA1_80 = 0x0001;
export const PROFILE_AEAD_AES128_GCM = 0x0007;

/** werift's per-SSRC SRTP state (its `Context.getSrtpSsrcState`), shared so that both send paths agree on the ROC. */
export interface SrtpSsrcState {
  rolloverCounter: number;
  lastSequenceNumber: number;
  rolloverHasProcessed?: boolean;
}

/**
 * The rollover counter for an outgoing packet (RFC 3711 §3.3.1), updating the
 * state when the packet is the newest so far. A retransmission of an older
 * packet gets the ROC it was first sent with and leaves the state alone.
 */
export function rolloverFor(s: SrtpSsrcState, seq: number): number {
  if (!s.rolloverHasProcessed) {
    s.rolloverHasProcessed = true;
    s.lastSequenceNumber = seq;
    return s.rolloverCounter;
  }
  const last = s.lastSequenceNumber;
  const roc = s.rolloverCounter;
  let v = roc;
  if (last < 0x8000) {
    if (seq - last > 0x8000) v = roc - 1;
  } else if (last - 0x8000 > seq) {
    v = roc + 1;
  }
  if (v === roc + 1 || (v === roc && seq > last)) {
    s.rolloverCounter = v >>> 0;
    s.lastSequenceNumber = seq;
  }
  return v < 0 ? 0 : v >>> 0;
}

/** Length of the header `writeRtpHeader` writes: 12, or 20 with a transport-cc extension. */
export function rtpHeaderLength(twccId: number): number {
  return twccId > 0 ? 20 : 12;
}

/**
 * Writes an RTP header (version 2, no padding, no CSRC) at offset 0 of `b`;
 * with `twccId` (1–14) a one-byte-form extension block (RFC 8285) holding
 * only the transport-wide sequence number. Returns the header length.
 */
export function writeRtpHeader(b: Buffer, payloadType: number, marker: boolean, seq: number, timestamp: number, ssrc: number, twccId: number, twccSeq: number): number {
  b[0] = twccId > 0 ? 0x90 : 0x80;
  b[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  b[2] = (seq >>> 8) & 0xff;
  b[3] = seq & 0xff;
  b.writeUInt32BE(timestamp >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  if (twccId <= 0) return 12;
  b[12] = 0xbe;
  b[13] = 0xde;
  b[14] = 0;
  b[15] = 1; // one 32-bit word of extensions
  b[16] = (twccId << 4) | 1; // id, length - 1
  b[17] = (twccSeq >>> 8) & 0xff;
  b[18] = twccSeq & 0xff;
  b[19] = 0; // padding
  return 20;
}

/** The session keys werift derived (`SrtpSession.localContext`). */
export interface WeriftSrtpContext {
  profile: number;
  srtpSessionKey: Buffer;
  srtpSessionSalt: Buffer;
  srtpSessionAuthTag?: Buffer;
  getSrtpSsrcState(ssrc: number): SrtpSsrcState;
}

/** SRTP protection of outgoing RTP with one set of session keys. */
export class SrtpProtector {
  /** Bytes the protection adds after the payload. */
  readonly tagLength: number;
  readonly #gcm: boolean;
  readonly #key: KeyObject;
  readonly #authKey: KeyObject | undefined;
  readonly #salt: Buffer;
  /** GCM: 12-byte IV; CM: 16-byte counter block. Copied by createCipheriv, so reused. */
  readonly #iv: Buffer;
  readonly #roc = Buffer.alloc(4);

  constructor(
    readonly profile: number,
    sessionKey: Buffer,
    sessionSalt: Buffer,
    sessionAuthKey?: Buffer,
  ) {
    if (profile === PROFILE_AEAD_AES128_GCM) {
      this.#gcm = true;
      this.tagLength = 16;
      this.#iv = Buffer.alloc(12);
    } else if (profile === PROFILE_AES128_CM_HMAC_SHA1_80) {
      if (!sessionAuthKey) throw new Error('SRTP AES_CM_128_HMAC_SHA1_80 needs the session authentication key');
      this.#gcm = false;
      this.tagLength = 10;
      this.#iv = Buffer.alloc(16);
      this.#authKey = createSecretKey(sessionAuthKey);
    } else {
      throw new Error(`SRTP protection profile 0x${profile.toString(16)} is not supported by the fast send path`);
    }
    if (sessionKey.length !== 16 || sessionSalt.length < (this.#gcm ? 12 : 14)) throw new Error('SRTP session key or salt has an unexpected length');
    this.#key = createSecretKey(sessionKey);
    this.#salt = Buffer.from(sessionSalt.subarray(0, this.#gcm ? 12 : 14));
  }

  /** From werift's local SRTP context; undefined when its profile is one we do not handle. */
  static fromWerift(ctx: WeriftSrtpContext | undefined): SrtpProtector | undefined {
    if (!ctx) return undefined;
    if (ctx.profile !== PROFILE_AEAD_AES128_GCM && ctx.profile !== PROFILE_AES128_CM_HMAC_SHA1_80) return undefined;
    try {
      return new SrtpProtector(ctx.profile, ctx.srtpSessionKey, ctx.srtpSessionSalt, ctx.srtpSessionAuthTag);
    } catch {
      return undefined;
    }
  }

  /**
   * Protects one packet: `header` (the RTP header as sent, authenticated),
   * `payload` (encrypted). Returns the datagram as [header, ciphertext, tag]
   * for a gathering send; `header` is not modified.
   */
  protect(header: Buffer, payload: Buffer, ssrc: number, seq: number, roc: number): [Buffer, Buffer, Buffer] {
    const iv = this.#iv;
    const salt = this.#salt;
    if (this.#gcm) {
      // RFC 7714 §8.1
      iv[0] = salt[0]!;
      iv[1] = salt[1]!;
      iv[2] = ((ssrc >>> 24) & 0xff) ^ salt[2]!;
      iv[3] = ((ssrc >>> 16) & 0xff) ^ salt[3]!;
      iv[4] = ((ssrc >>> 8) & 0xff) ^ salt[4]!;
      iv[5] = (ssrc & 0xff) ^ salt[5]!;
      iv[6] = ((roc >>> 24) & 0xff) ^ salt[6]!;
      iv[7] = ((roc >>> 16) & 0xff) ^ salt[7]!;
      iv[8] = ((roc >>> 8) & 0xff) ^ salt[8]!;
      iv[9] = (roc & 0xff) ^ salt[9]!;
      iv[10] = ((seq >>> 8) & 0xff) ^ salt[10]!;
      iv[11] = (seq & 0xff) ^ salt[11]!;
      const cipher = createCipheriv('aes-128-gcm', this.#key, iv);
      cipher.setAAD(header);
      const enc = cipher.update(payload);
      cipher.final();
      return [header, enc, cipher.getAuthTag()];
    }
    // RFC 3711 §4.1.1
    iv[0] = salt[0]!;
    iv[1] = salt[1]!;
    iv[2] = salt[2]!;
    iv[3] = salt[3]!;
    iv[4] = ((ssrc >>> 24) & 0xff) ^ salt[4]!;
    iv[5] = ((ssrc >>> 16) & 0xff) ^ salt[5]!;
    iv[6] = ((ssrc >>> 8) & 0xff) ^ salt[6]!;
    iv[7] = (ssrc & 0xff) ^ salt[7]!;
    iv[8] = ((roc >>> 24) & 0xff) ^ salt[8]!;
    iv[9] = ((roc >>> 16) & 0xff) ^ salt[9]!;
    iv[10] = ((roc >>> 8) & 0xff) ^ salt[10]!;
    iv[11] = (roc & 0xff) ^ salt[11]!;
    iv[12] = ((seq >>> 8) & 0xff) ^ salt[12]!;
    iv[13] = (seq & 0xff) ^ salt[13]!;
    iv[14] = 0;
    iv[15] = 0;
    const enc = createCipheriv('aes-128-ctr', this.#key, iv).update(payload);
    const r = this.#roc;
    r.writeUInt32BE(roc >>> 0, 0);
    const tag = createHmac('sha1', this.#authKey!).update(header).update(enc).update(r).digest().subarray(0, 10);
    return [header, enc, tag];
  }
}
