// Core events -> Galène protocol v2 frames. Events that read the same for
// every recipient (user, chat, message) are rendered once and the string is
// reused for the whole broadcast.
import type { ServerMessage, ServerMessageOf } from '@atrium/protocol/galene';
import type { CoreEvent, GroupInfo } from '../../core/client.ts';
import { type PlaceOptions, endpointBase, placeFor } from '../../http/place.ts';
import { wirePermissions } from './vocabulary.ts';

/** Where the group lives on the web, as this client reached it, with the Galène WebSocket. */
export interface Place {
  groupUrl(name: string): string;
  endpoint: string;
}

/** The path of the Galène protocol's WebSocket. */
export const WEBSOCKET_PATH = '/ws';

/** The server's place as a request with this Host header reached it, with its Galène endpoint. */
export function galenePlace(host: string | undefined, opts: PlaceOptions): Place {
  const place = placeFor(host, opts);
  return { groupUrl: place.groupUrl, endpoint: `${endpointBase(host, opts).replace(/^http/, 'ws')}${WEBSOCKET_PATH}` };
}

const cache = new WeakMap<CoreEvent, string>();

export function renderEvent(event: CoreEvent, place: Place): string {
  if (event.type === 'joined' || event.type === 'stream') return JSON.stringify(toMessage(event, place));
  let frame = cache.get(event);
  if (frame === undefined) {
    frame = JSON.stringify(toMessage(event, place));
    cache.set(event, frame);
  }
  return frame;
}

/**
 * A group's status. As in Galène, whether it is locked and how many are in
 * it are told to its members and for public groups only (`counts`); whether
 * a member may change its password, to members only (`member`).
 */
export function status(
  info: GroupInfo,
  place: Place,
  opts: { counts?: boolean; member?: boolean } = { counts: true, member: true },
): NonNullable<ServerMessageOf<'joined'>['status']> & { name: string } {
  const s: NonNullable<ServerMessageOf<'joined'>['status']> & { name: string } = {
    name: info.name,
    location: place.groupUrl(info.name),
    endpoint: place.endpoint,
  };
  if (info.displayName !== undefined) s.displayName = info.displayName;
  if (info.description !== undefined) s.description = info.description;
  if (info.authServer !== undefined) s.authServer = info.authServer;
  if (info.authPortal !== undefined) s.authPortal = info.authPortal;
  if (opts.counts) {
    if (info.locked) s.locked = true;
    s.clientCount = info.clientCount;
  }
  if (opts.member && info.canChangePassword) s.canChangePassword = true;
  return s;
}

function toMessage(event: CoreEvent, place: Place): ServerMessage {
  switch (event.type) {
    case 'joined': {
      const m: ServerMessageOf<'joined'> = {
        type: 'joined',
        kind: event.kind,
        group: event.group,
        permissions: wirePermissions(event.permissions),
        status: status(event.info, place),
        data: event.info.data,
      };
      if (event.username !== undefined) m.username = event.username;
      if (event.kind !== 'leave') m.rtcConfiguration = { iceServers: event.iceServers };
      if (event.info.lockMessage) m.value = event.info.lockMessage;
      return m;
    }
    case 'user': {
      const m: ServerMessageOf<'user'> = { type: 'user', kind: event.kind, id: event.id };
      if (event.username !== undefined) m.username = event.username;
      if (event.kind !== 'delete') {
        m.permissions = wirePermissions(event.permissions);
        m.data = event.data;
      }
      return m;
    }
    case 'chat': {
      const m: ServerMessageOf<'chat'> = {
        type: 'chat',
        value: event.value,
        time: event.time.toISOString(),
        privileged: event.privileged,
      };
      if (event.history) (m as { type: string }).type = 'chathistory';
      if (event.id !== undefined) m.id = event.id;
      if (event.kind) m.kind = event.kind;
      if (event.source !== undefined) m.source = event.source;
      if (event.username !== undefined) m.username = event.username;
      if (event.dest !== undefined) m.dest = event.dest;
      return m;
    }
    case 'stream':
      switch (event.kind) {
        case 'offer':
          return { type: 'offer', id: event.id, label: event.label, source: event.source, ...(event.username !== undefined ? { username: event.username } : {}), sdp: event.sdp };
        case 'answer':
          return { type: 'answer', id: event.id, sdp: event.sdp };
        case 'ice':
          return { type: 'ice', id: event.id, candidate: event.candidate };
        case 'close':
          return { type: 'close', id: event.id };
        case 'abort':
          return { type: 'abort', id: event.id };
        case 'renegotiate':
          return { type: 'renegotiate', id: event.id };
      }
      break;
    case 'message': {
      const m: ServerMessageOf<'usermessage'> = { type: 'usermessage', kind: event.kind, privileged: event.privileged };
      if (event.source !== undefined) m.source = event.source;
      if (event.username !== undefined) m.username = event.username;
      if (event.dest !== undefined) m.dest = event.dest;
      if (event.error !== undefined) m.error = event.error;
      if (event.value !== undefined) m.value = event.value;
      return m;
    }
  }
}
