// Batched WebSocket output. A join in a group of N members sends a frame to
// each of them; written one by one, a join storm costs N system calls per
// join. Frames are queued per connection and written together: at the end
// of the current turn of the event loop when one of them is urgent (chat,
// replies), or within LAZY_FLUSH_MS when all are presence updates, which
// nobody waits for. A connection's frames always leave in the order queued.
import type { RawData, WebSocket } from 'ws';

/** How long presence-only output (user add/change/delete) may wait. */
export const LAZY_FLUSH_MS = 150;

/** Limit of queued output per connection before it counts as too slow. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

interface Outbox {
  ws: WebSocket;
  frames: string[];
  bytes: number;
}

interface RawSocket {
  write(data: Buffer): boolean;
  destroyed: boolean;
}

const boxes = new Map<WebSocket, Outbox>();
const urgent = new Set<Outbox>();
let immediate: NodeJS.Immediate | undefined;
let lazyTimer: NodeJS.Timeout | undefined;

function socketOf(ws: WebSocket): RawSocket | undefined {
  // `_socket` is ws's underlying net.Socket; public in practice but untyped.
  return (ws as unknown as { _socket?: RawSocket })._socket;
}

/**
 * Writes the queued frames as one buffer of complete, unmasked text frames
 * (RFC 6455 §5.2): one system call and one copy, instead of ws's two
 * buffers per frame. Safe because the server never compresses (no
 * permessage-deflate), so ws has nothing of its own queued in between.
 */
function write(box: Outbox): void {
  boxes.delete(box.ws);
  urgent.delete(box);
  const { ws, frames } = box;
  if (ws.readyState !== 1) return;
  const raw = socketOf(ws);
  if (!raw || raw.destroyed) return;
  const sizes = frames.map((f) => Buffer.byteLength(f));
  let total = 0;
  for (const n of sizes) total += n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    const n = sizes[i]!;
    buf[at++] = 0x81; // FIN, text
    if (n < 126) {
      buf[at++] = n;
    } else if (n < 65536) {
      buf[at++] = 126;
      buf.writeUInt16BE(n, at);
      at += 2;
    } else {
      buf[at++] = 127;
      buf.writeUInt32BE(Math.floor(n / 2 ** 32), at);
      buf.writeUInt32BE(n >>> 0, at + 4);
      at += 8;
    }
    at += buf.write(frames[i]!, at, 'utf8');
  }
  raw.write(buf);
}

function flushUrgent(): void {
  immediate = undefined;
  for (const box of [...urgent]) write(box);
}

function flushAll(): void {
  lazyTimer = undefined;
  for (const box of [...boxes.values()]) write(box);
}

/**
 * Queues a text frame. Returns false if the peer is too slow to keep up
 * (its output backlog is over MAX_BUFFERED_BYTES): the caller should close it.
 */
export function sendBatched(ws: WebSocket, frame: string, isUrgent = true): boolean {
  if (ws.readyState !== 1) return true;
  let box = boxes.get(ws);
  if (!box) {
    box = { ws, frames: [], bytes: 0 };
    boxes.set(ws, box);
  }
  if (ws.bufferedAmount + box.bytes > MAX_BUFFERED_BYTES) {
    boxes.delete(ws);
    urgent.delete(box);
    return false;
  }
  box.frames.push(frame);
  box.bytes += frame.length;
  if (isUrgent) {
    urgent.add(box);
    if (immediate === undefined) immediate = setImmediate(flushUrgent);
  } else {
    if (lazyTimer === undefined) lazyTimer = setTimeout(flushAll, LAZY_FLUSH_MS);
  }
  return true;
}

/** Writes whatever is queued for this connection now (before closing it, say). */
export function flushNow(ws: WebSocket): void {
  const box = boxes.get(ws);
  if (box) write(box);
}

/** Bytes queued for a connection and not yet written to the network: ours, ws's and the socket's. */
export function queuedBytes(ws: WebSocket): number {
  return ws.bufferedAmount + (boxes.get(ws)?.bytes ?? 0);
}

/** Drops what is queued for a connection that is gone. */
export function discard(ws: WebSocket): void {
  const box = boxes.get(ws);
  if (box) {
    boxes.delete(ws);
    urgent.delete(box);
  }
}

/** Bytes in a received frame, however ws delivered it. */
export function frameSize(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

/** Closes a connection after what is queued for it; the reason is cut to the 123 bytes a close frame allows. */
export function closeAfterQueued(ws: WebSocket, code: number, reason: string): void {
  flushNow(ws);
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  ws.close(code, r);
}
