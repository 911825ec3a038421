// A relay between same-origin pages of one browser profile (tabs, windows
// opened with window.open, pop-ups) over a BroadcastChannel. Every page on
// the channel sees every message and keeps those addressed to it. Same origin
// is the trust boundary: any script of the origin could post on the channel.
import { asRelayMessage, type RelayChannel, type RelayMessage } from './relay.ts';

/** The BroadcastChannel name used when none is given. */
export const DEFAULT_BROADCAST_NAME = 'atrium-window-relay';

export interface BroadcastRelayOptions {
  /** Channel name; pages must agree on it (default `atrium-window-relay`). */
  name?: string;
  /** Constructor to use, for tests or other globals (default `BroadcastChannel`). */
  BroadcastChannel?: typeof BroadcastChannel;
}

export function createBroadcastRelay(options: BroadcastRelayOptions = {}): RelayChannel {
  const Ctor = options.BroadcastChannel ?? globalThis.BroadcastChannel;
  if (typeof Ctor !== 'function') throw new Error('BroadcastChannel is not available here');
  const channel = new Ctor(options.name ?? DEFAULT_BROADCAST_NAME);
  const listeners = new Set<(m: RelayMessage) => void>();
  channel.onmessage = (e: MessageEvent) => {
    const m = asRelayMessage(e.data);
    if (!m) return;
    for (const l of [...listeners]) l(m);
  };
  let closed = false;
  return {
    send(message) {
      if (!closed) channel.postMessage(message);
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      listeners.clear();
      channel.close();
    },
  };
}
