// Where this server is, as a client sees it: the base URL used in group
// locations and the audience of tokens (the full group URL). Taken from the
// server config's proxyURL when set (behind a reverse proxy), else from the
// Host header of the request. A dialect adds its own endpoints to it.

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

/**
 * The URL path of a group: each segment URL-encoded, with a trailing slash.
 * Names are checked before they get here; a lone surrogate, which
 * encodeURIComponent cannot encode, would become U+FFFD rather than throw.
 */
export function groupPath(name: string): string {
  const segments = name.replace(/\p{Surrogate}/gu, '\uFFFD').split('/');
  return `/group/${segments.map(encodeURIComponent).join('/')}/`;
}

/** Where the server is, as one request reached it. */
export interface Place {
  /** The server's base URL, without a trailing slash: `https://host:port` or the proxy's URL. */
  base: string;
  /** A group's public URL (its page, and the audience of its tokens). */
  groupUrl(name: string): string;
}

export function placeFor(host: string | undefined, opts: PlaceOptions): Place {
  const base = baseUrl(host, opts);
  return { base, groupUrl: (name) => `${base}${groupPath(name)}` };
}
