// The packets a down-track sent lately, as sent (rewritten sequence number
// and timestamp), kept about one second to answer the subscriber's NACKs.
// Ring buffers of plain values: storing a packet allocates nothing.

const MAX_SLOTS = 16384;

export interface CachedPacket {
  seq: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export class PacketCache {
  #seq: Int32Array;
  #ts: Uint32Array;
  #marker: Uint8Array;
  #at: Float64Array;
  #resent: Float64Array;
  #payload: (Buffer | undefined)[];
  #mask: number;

  constructor(
    slots = 512,
    /** How long a packet is kept (ms). */
    readonly maxAgeMs = 1000,
    /** The same packet is not resent again within this (ms): NACKs repeat while the first answer is under way. */
    readonly resendGapMs = 40,
  ) {
    const size = 1 << Math.ceil(Math.log2(Math.max(16, slots)));
    this.#seq = new Int32Array(size).fill(-1);
    this.#ts = new Uint32Array(size);
    this.#marker = new Uint8Array(size);
    this.#at = new Float64Array(size);
    this.#resent = new Float64Array(size);
    this.#payload = new Array(size).fill(undefined);
    this.#mask = size - 1;
  }

  get size(): number {
    return this.#mask + 1;
  }

  store(seq: number, timestamp: number, marker: boolean, payload: Buffer, now: number): void {
    let i = seq & this.#mask;
    const old = this.#seq[i]!;
    if (old >= 0 && old !== seq && now - this.#at[i]! < this.maxAgeMs && this.size < MAX_SLOTS) {
      // the ring holds less than maxAgeMs at this packet rate: double it
      this.#grow();
      i = seq & this.#mask;
    }
    this.#seq[i] = seq;
    this.#ts[i] = timestamp;
    this.#marker[i] = marker ? 1 : 0;
    this.#at[i] = now;
    this.#resent[i] = 0;
    this.#payload[i] = payload;
  }

  #grow(): void {
    const size = this.size * 2;
    const seq = this.#seq;
    const ts = this.#ts;
    const marker = this.#marker;
    const at = this.#at;
    const resent = this.#resent;
    const payload = this.#payload;
    this.#seq = new Int32Array(size).fill(-1);
    this.#ts = new Uint32Array(size);
    this.#marker = new Uint8Array(size);
    this.#at = new Float64Array(size);
    this.#resent = new Float64Array(size);
    this.#payload = new Array(size).fill(undefined);
    this.#mask = size - 1;
    for (let j = 0; j < seq.length; j++) {
      const s = seq[j]!;
      if (s < 0) continue;
      const i = s & this.#mask;
      this.#seq[i] = s;
      this.#ts[i] = ts[j]!;
      this.#marker[i] = marker[j]!;
      this.#at[i] = at[j]!;
      this.#resent[i] = resent[j]!;
      this.#payload[i] = payload[j];
    }
  }

  /** The packet with this sequence number if still held, else undefined. */
  get(seq: number, now: number): CachedPacket | undefined {
    const i = seq & this.#mask;
    if (this.#seq[i] !== seq || now - this.#at[i]! > this.maxAgeMs) return undefined;
    return { seq, timestamp: this.#ts[i]!, marker: this.#marker[i] === 1, payload: this.#payload[i]! };
  }

  /**
   * Answers a NACK: calls `resend` for each lost packet still held and not
   * resent in the last resendGapMs. Returns how many were resent.
   */
  answerNack(lost: readonly number[], now: number, resend: (seq: number, timestamp: number, marker: boolean, payload: Buffer) => void): number {
    let n = 0;
    for (const seq of lost) {
      const i = seq & this.#mask;
      if (this.#seq[i] !== seq || now - this.#at[i]! > this.maxAgeMs) continue;
      if (now - this.#resent[i]! < this.resendGapMs) continue;
      this.#resent[i] = now;
      resend(seq, this.#ts[i]!, this.#marker[i] === 1, this.#payload[i]!);
      n++;
    }
    return n;
  }
}
