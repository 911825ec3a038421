// The HTTP side of Camus rooms: the room page `/room/<id>` and its WebSocket
// `/room/<id>/ws` (Camus's client opens `<page path>/ws`). A room is the core
// group of the same name: an ephemeral one when no group file names it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { placeFor } from '../../http/place.ts';
import { Connections, contextOf, type Dialect, type DialectHost, WebSocketTransport } from '../kit/index.ts';
import { CamusConnection, DIALECT } from './connection.ts';

type RoomRequest = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, string | string[] | undefined> }>;

export function camusDialect(): Dialect {
  const connections = new Connections<CamusConnection>();
  return {
    name: DIALECT,
    register(host: DialectHost) {
      const { app } = host;
      const ctx = contextOf(host);
      app.get('/room/:id', async (req: RoomRequest, reply: FastifyReply) => {
        return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(roomPage(req.params.id));
      });
      // Camus builds the socket URL from the page path: keep the page free of a trailing slash.
      app.get('/room/:id/', async (req: RoomRequest, reply: FastifyReply) => reply.redirect(`/room/${encodeURIComponent(req.params.id)}`, 301));

      app.get('/room/:id/ws', { websocket: true }, (socket, req: RoomRequest) => {
        const room = req.params.id;
        const join = {
          room,
          groupUrl: placeFor(req.headers.host, host.place()).groupUrl(room),
          token: single(req.query.token),
          username: single(req.query.username),
          address: host.address(req),
        };
        connections.add(new CamusConnection(new WebSocketTransport(socket), join, ctx));
      });
    },
    closeAll: (reason) => connections.closeAll(reason),
  };
}

function single(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

function roomPage(id: string): string {
  const name = escapeHtml(id);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${name} · Atrium room</title></head>
<body><main><h1>Room ${name}</h1>
<p>This is the Atrium mesh room <code>${name}</code>. A Camus client talks to it over the WebSocket
<code>${escapeHtml(`/room/${encodeURIComponent(id)}/ws`)}</code>; the web app will live here.</p>
</main></body></html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
