// Token buckets: how many messages a peer may send, with a burst allowance.
// Used by every dialect to keep one noisy client from costing the others.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now = performance.now()): boolean {
    const elapsed = (now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerSecond);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Counts refusals in a sliding second so a connection that keeps flooding
 * after being told can be closed, while an occasional burst only costs the
 * excess messages.
 */
export class FloodGuard {
  private refusedInWindow = 0;
  private windowStart = 0;
  private lastWarning = -Infinity;

  constructor(private readonly maxRefusedPerSecond: number) {}

  /** Records a refused message; returns what to do about it. */
  refused(now = performance.now()): 'warn' | 'quiet' | 'close' {
    if (now - this.windowStart > 1000) {
      this.windowStart = now;
      this.refusedInWindow = 0;
    }
    this.refusedInWindow++;
    if (this.refusedInWindow > this.maxRefusedPerSecond) return 'close';
    if (now - this.lastWarning >= 1000) {
      this.lastWarning = now;
      return 'warn';
    }
    return 'quiet';
  }
}

/** What a dialect does when FloodGuard decides: its own close and error frames. */
export interface FloodAnswers {
  /** Closes the connection for flooding (policy violation). */
  close(reason: string): void;
  /** Sends the dialect's `rate-limited` error. */
  warn(message: string): void;
  /** Counts a dropped message that is answered with nothing. */
  count(kind: 'rate-limited' | 'flood-close'): void;
}

/**
 * Answers one message dropped for exceeding the rate: one warning a second,
 * silence in between, and a close when the peer keeps going regardless.
 */
export function refuseMessage(flood: FloodGuard, message: string, noun: string, a: FloodAnswers): void {
  const action = flood.refused();
  if (action === 'close') {
    a.count('flood-close');
    a.close(`flooding: too many ${noun} after being told to slow down`);
  } else if (action === 'warn') {
    a.warn(`${message}; ${noun} over the limit are dropped`);
  } else {
    a.count('rate-limited');
  }
}
