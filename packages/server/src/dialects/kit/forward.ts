// Handing a WebSocket connection to another node of a cluster: when a group
// lives on another node, the node a client reached opens a WebSocket of the
// same dialect (same path and query) to the owner, replays what the client
// sent so far, and from then on pipes frames both ways, unread. The owner
// does everything else (authentication, the group, its rules), so a client
// that lands on the wrong node still ends up in the one group, never in a
// copy of it. See docs/architecture.md, "Running several nodes".
import type { IncomingHttpHeaders } from 'node:http';
import { type RawData, WebSocket } from 'ws';
import { WEBSOCKET_OPTIONS } from './websocket.ts';

/** Where to hand a connection. */
export interface ForwardTarget {
  /** The owner node's base URL for the other nodes, e.g. http://10.0.0.12:8443 */
  url: string;
  /** The client's address as this node saw it, passed on in X-Forwarded-For (for the owner's login throttling). */
  address?: string | undefined;
}

/** What a dialect adds to the pipe. */
export interface ForwardOptions {
  /**
   * Frames of the owner's to leave out, by position: what this node already
   * answered itself (the Galène handshake: the client must not see two).
   */
  dropFromOwner?: (text: string, index: number) => boolean;
}

/** How long the owner may take to accept the WebSocket. */
const CONNECT_TIMEOUT_MS = 5000;

/** Frames a client may send while the owner's socket opens, before the pipe gives up. */
const MAX_PENDING = 256;

/** The request a WebSocket was opened with: its path and query, and the headers worth passing on. */
export interface SocketOrigin {
  url: string;
  headers: IncomingHttpHeaders;
}

/** A frame as ws gives it, or as a pipe sends it on. */
interface Frame {
  data: RawData;
  binary: boolean;
}

/** WebSocket close codes that may not be sent in a close frame: they are replaced by 1011 (or 1001 for a clean end). */
function sendableCode(code: number): number {
  if (code === 1005 || code === 1006 || code === 1015 || code < 1000 || code >= 5000 || (code >= 1016 && code < 3000)) return 1001;
  return code;
}

/** The metric of connections piped to other nodes, given by the server. */
export interface ForwardCounter {
  inc(): void;
  dec(): void;
}

/**
 * Opens the owner's WebSocket and, once it is open, replays `replay` and
 * pipes `client` to it. The client's input listeners are `detach`ed at once
 * (so frames that arrive meanwhile wait here, in order); if the owner cannot
 * be reached, `restore` gets them back and this resolves false.
 */
export async function pipeToOwner(
  client: WebSocket,
  origin: SocketOrigin,
  to: ForwardTarget,
  replay: readonly Frame[],
  hooks: {
    detach(): void;
    restore(pending: readonly Frame[]): void;
    clientGone(): void;
    options?: ForwardOptions;
    counter?: ForwardCounter | undefined;
  },
): Promise<boolean> {
  hooks.detach();
  const pending: Frame[] = [];
  let clientClosed = false;
  const onMessage = (data: RawData, binary: boolean) => {
    if (pending.length < MAX_PENDING) pending.push({ data, binary });
    else client.close(1008, 'too many messages while the connection is handed to the node that holds the group');
  };
  const onClose = () => {
    clientClosed = true;
  };
  client.on('message', onMessage);
  client.on('close', onClose);

  const target = new URL(origin.url, to.url.replace(/^http/, 'ws'));
  const headers: Record<string, string> = { 'x-atrium-forwarded': '1' };
  for (const name of ['host', 'origin', 'user-agent', 'cookie', 'authorization'] as const) {
    const v = origin.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  if (to.address !== undefined) headers['x-forwarded-for'] = to.address;
  const owner = new WebSocket(target, { headers, handshakeTimeout: CONNECT_TIMEOUT_MS, maxPayload: WEBSOCKET_OPTIONS.maxPayload, perMessageDeflate: false, autoPong: false });
  // The owner may speak at once (ws emits frames that came with the handshake right after 'open'): listen before it opens.
  let index = 0;
  let toClient: ((data: RawData, binary: boolean) => void) | undefined;
  const early: Frame[] = [];
  owner.on('message', (data, binary) => {
    const i = index++;
    if (hooks.options?.dropFromOwner && !binary && hooks.options.dropFromOwner(frameText(data), i)) return;
    if (toClient) toClient(data, binary);
    else early.push({ data, binary });
  });
  const opened = await new Promise<boolean>((resolve) => {
    owner.once('open', () => resolve(true));
    owner.once('error', () => resolve(false));
    owner.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(false);
    });
  });
  client.off('message', onMessage);
  client.off('close', onClose);
  if (!opened || clientClosed || client.readyState !== WebSocket.OPEN) {
    owner.removeAllListeners();
    owner.on('error', () => {});
    if (owner.readyState === WebSocket.OPEN || owner.readyState === WebSocket.CONNECTING) owner.terminate();
    if (clientClosed || client.readyState !== WebSocket.OPEN) {
      hooks.clientGone();
      return true;
    }
    hooks.restore(pending);
    return false;
  }

  hooks.counter?.inc();
  toClient = (data, binary) => {
    if (client.readyState === WebSocket.OPEN) client.send(data, { binary });
  };
  for (const f of early) toClient(f.data, f.binary);
  // Each side's liveness checks reach the other end, so that neither keeps a dead peer.
  owner.on('ping', (data) => client.readyState === WebSocket.OPEN && client.ping(data));
  client.on('pong', (data) => owner.readyState === WebSocket.OPEN && owner.pong(data));
  client.on('ping', (data) => owner.readyState === WebSocket.OPEN && owner.ping(data));
  owner.on('pong', (data) => client.readyState === WebSocket.OPEN && client.pong(data));
  client.on('message', (data, binary) => owner.readyState === WebSocket.OPEN && owner.send(data, { binary }));
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.counter?.dec();
  };
  owner.on('close', (code, reason) => {
    end();
    if (client.readyState === WebSocket.OPEN) client.close(sendableCode(code), reason.toString());
  });
  client.on('close', (code, reason) => {
    end();
    if (owner.readyState === WebSocket.OPEN) owner.close(sendableCode(code), reason.toString());
    else owner.terminate();
  });
  owner.on('error', () => {});
  for (const f of [...replay, ...pending]) owner.send(f.data, { binary: f.binary });
  return true;
}

function frameText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  return Buffer.from(data as ArrayBuffer).toString();
}
