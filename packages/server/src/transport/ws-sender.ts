// Batched WebSocket output. A broadcast to N members would otherwise cost N
// system calls per message per member; corking each socket until the end of
// the current turn of the event loop lets many frames leave in one write.
import type { WebSocket } from 'ws';

const pending = new Set<WebSocket>();
let scheduled = false;

function flush(): void {
  scheduled = false;
  for (const ws of pending) {
    const raw = socketOf(ws);
    raw?.uncork();
  }
  pending.clear();
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

function socketOf(ws: WebSocket): Corkable | undefined {
  // `_socket` is ws's underlying net.Socket; it is public in practice but untyped.
  return (ws as unknown as { _socket?: Corkable })._socket;
}

/** Limit of queued output per connection before it counts as too slow. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Sends a text frame; returns false if the peer is too slow to keep up. */
export function sendBatched(ws: WebSocket, frame: string): boolean {
  if (ws.readyState !== 1) return true;
  if (ws.bufferedAmount > MAX_BUFFERED_BYTES) return false;
  if (!pending.has(ws)) {
    const raw = socketOf(ws);
    if (raw) {
      raw.cork();
      pending.add(ws);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    }
  }
  ws.send(frame);
  return true;
}
