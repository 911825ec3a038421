// The Galène protocol v2 dialect: its WebSocket at /ws and its HTTP side
// (group pages, .status, /public-groups.json).
import { Connections, contextOf, type Dialect, type DialectHost, WebSocketTransport } from '../kit/index.ts';
import { DIALECT, GaleneConnection, type GaleneContext } from './connection.ts';
import { registerGroupPages } from './pages.ts';
import { WEBSOCKET_PATH, galenePlace } from './render.ts';

export function galeneDialect(): Dialect {
  const connections = new Connections<GaleneConnection>();
  return {
    name: DIALECT,
    register(host: DialectHost) {
      const ctx: GaleneContext = { ...contextOf(host), activeIds: new Set() };
      host.app.get(WEBSOCKET_PATH, { websocket: true }, (socket, req) => {
        connections.add(new GaleneConnection(new WebSocketTransport(socket), galenePlace(req.headers.host, host.place()), ctx, host.address(req)));
      });
      registerGroupPages(host.app, { registry: host.registry, place: () => host.place(), web: host.web });
    },
    closeAll: (reason) => connections.closeAll(reason),
  };
}
