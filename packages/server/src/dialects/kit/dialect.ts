// How a dialect plugs into the server: a Dialect registers its routes and
// transports on the HTTP server (`register`) and ends its connections when
// the server stops (`closeAll`). server.ts treats every dialect the same
// way; it knows none of them by name beyond the list it registers.
import type { FastifyInstance } from 'fastify';
import type { Client } from '../../core/client.ts';
import type { PlaceOptions } from '../../http/place.ts';
import type { WebApp } from '../../http/web.ts';
import type { DialectContext } from './connection.ts';

/** What a request exposes of where it came from (fastify's request, or socket.io's handshake). */
export interface AddressSource {
  socket?: { remoteAddress?: string | undefined } | undefined;
  headers: Record<string, string | string[] | undefined>;
}

/** What the server lends a dialect when it registers. */
export interface DialectHost extends DialectContext {
  /** The HTTP server, with @fastify/websocket registered (WEBSOCKET_OPTIONS). */
  app: FastifyInstance;
  /** How the server is reached (TLS or not, the proxy's public URL): for group URLs and token audiences. */
  place(): PlaceOptions;
  /** The client's network address (behind a proxy, the one it forwarded), for throttling failed logins. */
  address(req: AddressSource): string | undefined;
  /** The web app's page, for a dialect that serves group pages. */
  web: WebApp | undefined;
}

export interface Dialect {
  /** Its name, as Client.kind and in the metrics: 'galene', 'camus', 'rtcpool', … */
  readonly name: string;
  /** Adds the dialect's routes and transports to the server. Called once, before the server listens. */
  register(host: DialectHost): void | Promise<void>;
  /** Ends every connection of the dialect (the server is stopping) and whatever it runs beside them. */
  closeAll(reason: string): void | Promise<void>;
}

/** The part of the host every connection gets. */
export function contextOf(host: DialectHost): DialectContext {
  return { registry: host.registry, metrics: host.metrics, log: host.log, liveness: host.liveness, joinTimeoutMs: host.joinTimeoutMs };
}

/** The live connections of a dialect, for closeAll. */
export class Connections<C extends Client & { onceClosed(listener: () => void): void }> {
  private readonly live = new Set<C>();

  add(conn: C): C {
    this.live.add(conn);
    conn.onceClosed(() => this.live.delete(conn));
    return conn;
  }

  get size(): number {
    return this.live.size;
  }

  /** Ends every connection as the server stops (not a kick: the dialect says so its own way). */
  closeAll(reason: string): void {
    for (const c of [...this.live]) c.terminate(reason, 'shutdown');
  }
}
