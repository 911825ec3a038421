// Where this server is, as a client sees it: the base URL used in group
// locations, the WebSocket endpoint and the audience of tokens. Taken from
// the server config's proxyURL when set (behind a reverse proxy), else from
// the Host header of the request.
import type { Place } from '../dialects/galene/render.ts';

export interface PlaceOptions {
  /** Plain HTTP (no TLS) when true. */
  insecure: boolean;
  /** Public URL of the server when behind a proxy, e.g. https://meet.example.org/ */
  proxyURL?: string | undefined;
}

export function baseUrl(host: string | undefined, opts: PlaceOptions): string {
  if (opts.proxyURL) return opts.proxyURL.replace(/\/+$/, '');
  return `${opts.insecure ? 'http' : 'https'}://${host ?? 'localhost'}`;
}

/** The URL path of a group: each segment URL-encoded, with a trailing slash. */
export function groupPath(name: string): string {
  return `/group/${name.split('/').map(encodeURIComponent).join('/')}/`;
}

export function placeFor(host: string | undefined, opts: PlaceOptions): Place {
  const base = baseUrl(host, opts);
  return {
    groupUrl: (name) => `${base}${groupPath(name)}`,
    endpoint: `${base.replace(/^http/, 'ws')}/ws`,
  };
}

/** "address:port" of a request's peer, as Galène's `identify` shows it ("[v6]:port" for IPv6). */
export function peerAddress(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string | undefined {
  let a = socket.remoteAddress;
  if (a === undefined) return undefined;
  // An IPv4 peer of a dual-stack socket reads as ::ffff:a.b.c.d.
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a)) a = a.slice(7);
  const host = a.includes(':') ? `[${a}]` : a;
  return socket.remotePort === undefined ? host : `${host}:${socket.remotePort}`;
}
