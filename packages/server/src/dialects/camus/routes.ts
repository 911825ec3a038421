// The HTTP side of Camus rooms: the room page `/room/<id>` and its WebSocket
// `/room/<id>/ws` (Camus's client opens `<page path>/ws`). A room is the core
// group of the same name: an ephemeral one when no group file names it.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PlaceOptions } from '../../http/place.ts';
import { placeFor } from '../../http/place.ts';
import { CamusConnection, type CamusContext } from './connection.ts';

export interface CamusRoutes {
  /** Ends every Camus connection (the server is stopping). */
  closeAll(reason: string): void;
}

type RoomRequest = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, string | string[] | undefined> }>;

export function registerCamusRoutes(app: FastifyInstance, ctx: CamusContext, place: () => PlaceOptions): CamusRoutes {
  const sockets = new Set<CamusConnection>();

  app.get('/room/:id', async (req: RoomRequest, reply: FastifyReply) => {
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(roomPage(req.params.id));
  });
  // Camus builds the socket URL from the page path: keep the page free of a trailing slash.
  app.get('/room/:id/', async (req: RoomRequest, reply: FastifyReply) => reply.redirect(`/room/${encodeURIComponent(req.params.id)}`, 301));

  app.get('/room/:id/ws', { websocket: true }, (socket, req: RoomRequest) => {
    const room = req.params.id;
    const conn = new CamusConnection(
      socket,
      {
        room,
        groupUrl: placeFor(req.headers.host, place()).groupUrl(room),
        token: single(req.query.token),
        username: single(req.query.username),
        address: ctx.address ? ctx.address(req) : req.socket.remoteAddress,
      },
      ctx,
    );
    sockets.add(conn);
    socket.on('close', () => sockets.delete(conn));
  });

  return {
    closeAll(reason) {
      for (const c of [...sockets]) c.terminate(reason);
    },
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
