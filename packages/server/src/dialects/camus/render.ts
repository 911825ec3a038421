// Core events and server replies -> Camus frames. Relayed messages and chat
// read the same for every recipient, so their frame is rendered once per
// event and the string reused for the whole room.
import { type IceServerEntry, DEFAULT_USERNAME, ROOM_ADDRESS, type RoomInfo, SERVER_ADDRESS, type ServerMessage, serverMessageSchemas } from '@atrium/protocol/camus';
import type { ChatEvent, IceServerInfo, MessageEvent } from '../../core/client.ts';
import type { Group } from '../../core/group.ts';

export const DIALECT = 'camus';

/** Relayed signalling travels through the core as messages of these kinds. */
export const KIND_PREFIX = 'camus:';
const RELAYED = new Set(['offer', 'answer', 'icecandidate', 'bye']);

const cache = new WeakMap<object, string | null>();

/** A server frame to one client. */
export function serverFrame(type: ServerMessage['type'], receiver: string, data?: unknown): string {
  const frame: Record<string, unknown> = { sender: SERVER_ADDRESS, receiver, type };
  if (data !== undefined) frame.data = data;
  return JSON.stringify(frame);
}

/** Who the server's `text` messages are from, as Camus's client shows them. */
export const SERVER_NAME = 'Ground control';

/**
 * A refusal for one client. Camus's client has a handler for a fixed set of
 * types and fails on any other (its server's `error` included), so the
 * server says what went wrong in a `text` message, which the client shows in
 * its chat; `error` carries the stable code for programs.
 */
export function serverText(receiver: string, text: string, code?: string): string {
  const data: Record<string, unknown> = { from: SERVER_NAME, time: Date.now(), text };
  if (code !== undefined) data.error = code;
  return JSON.stringify({ sender: SERVER_ADDRESS, receiver, type: 'text', data });
}

/** A chat message as Camus `text`; null for what Camus cannot show (history, captions). */
export function renderChat(event: ChatEvent): string | null {
  let frame = cache.get(event);
  if (frame === undefined) {
    frame =
      event.history || event.kind === 'caption'
        ? null
        : JSON.stringify({
            sender: event.source ?? SERVER_ADDRESS,
            receiver: event.dest ?? ROOM_ADDRESS,
            type: 'text',
            data: { from: event.username ?? DEFAULT_USERNAME, time: event.time.getTime(), text: event.value },
          });
    cache.set(event, frame);
  }
  return frame;
}

/**
 * A relayed message from another Camus client; null for anything else. The
 * value is checked again against the schema, so a message that reached the
 * core some other way (another dialect) cannot hand the client a bad shape.
 */
export function renderRelayed(event: MessageEvent): string | null {
  let frame = cache.get(event);
  if (frame === undefined) {
    frame = null;
    const type = event.kind.startsWith(KIND_PREFIX) ? event.kind.slice(KIND_PREFIX.length) : '';
    if (RELAYED.has(type) && event.source !== undefined) {
      const out = { sender: event.source, receiver: event.dest ?? ROOM_ADDRESS, type, data: event.value };
      const schema = serverMessageSchemas[type as 'offer' | 'answer' | 'icecandidate' | 'bye'];
      if (schema.safeParse(out).success) frame = JSON.stringify(out);
    }
    cache.set(event, frame);
  }
  return frame;
}

/** The room and its Camus clients, in the order they came. */
export function roomInfo(group: Group): RoomInfo {
  const clients: RoomInfo['clients'] = [];
  for (const m of group.allMembers()) {
    if (m.client.kind === DIALECT) clients.push({ id: m.id, username: m.username ?? DEFAULT_USERNAME });
  }
  return { room_id: group.name, clients };
}

/** ICE servers as Camus lists them: URL arrays, one entry per kind (a mixed entry is split). */
export function iceServers(servers: IceServerInfo[]): IceServerEntry[] {
  const out: IceServerEntry[] = [];
  for (const s of servers) {
    const urls = Array.isArray(s.urls) ? s.urls : [s.urls];
    const stun = urls.filter((u) => /^stuns?:/i.test(u));
    const turn = urls.filter((u) => /^turns?:/i.test(u));
    if (stun.length > 0) out.push({ urls: stun, kind: 'stun' });
    if (turn.length > 0) {
      const entry: IceServerEntry = { urls: turn, kind: 'turn' };
      if (s.username !== undefined) entry.username = s.username;
      if (s.credential !== undefined) entry.credential = s.credential;
      out.push(entry);
    }
  }
  return out;
}
