// Keeps idle connections honest: pings a peer that has been quiet, and drops
// one that has not answered anything for too long. One timer for all
// connections, so thousands of clients cost one wake-up every few seconds.

export interface LivePeer {
  /** performance.now() of the last frame received from the peer. */
  lastHeard: number;
  /** Sends the dialect's ping. */
  ping(): void;
  /** Closes the connection as dead. */
  expire(): void;
}

export class LivenessMonitor {
  private readonly peers = new Set<LivePeer>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: { pingAfterMs: number; expireAfterMs: number; sweepMs: number } = {
      pingAfterMs: 25_000,
      expireAfterMs: 75_000,
      sweepMs: 5_000,
    },
  ) {}

  add(peer: LivePeer): void {
    this.peers.add(peer);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.opts.sweepMs);
      this.timer.unref();
    }
  }

  delete(peer: LivePeer): void {
    this.peers.delete(peer);
    if (this.peers.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const p of this.peers) {
      const quiet = now - p.lastHeard;
      if (quiet > this.opts.expireAfterMs) p.expire();
      else if (quiet > this.opts.pingAfterMs) p.ping();
    }
  }
}
