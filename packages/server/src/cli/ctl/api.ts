// The admin API as `atrium ctl` speaks it: one HTTP request at a time to
// /galene-api/v0/ with the administrator's credentials, errors turned into
// sentences that say what to do. node:http(s) rather than fetch, so that
// --insecure can accept a self-signed certificate.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
}

export interface ApiOptions {
  server: string;
  insecure: boolean;
  credentials: Credentials;
}

export interface ApiResponse {
  status: number;
  statusText: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request the server refused, or that did not reach it; the message says why and what to try. */
export class CtlError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'CtlError';
  }
}

export class AdminApi {
  readonly base: URL;

  constructor(private readonly opts: ApiOptions) {
    let base: URL;
    try {
      base = new URL(opts.server);
    } catch {
      throw new CtlError(`--server "${opts.server}" is not a URL; give one such as https://meet.example.org:8443`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CtlError(`--server "${opts.server}" must be an http: or https: URL`);
    this.base = base;
  }

  /**
   * The URL of an API path given as segments after /galene-api/v0/ (each one
   * escaped; a group name keeps its slashes). An empty segment is left out
   * (the root group '' of global tokens: `.groups/.tokens/`), but a last one
   * makes the trailing slash of a list.
   */
  url(...segments: string[]): URL {
    const path = segments
      .filter((s, i) => s !== '' || i === segments.length - 1)
      .map((s) => s.split('/').map(encodeURIComponent).join('/'))
      .join('/');
    return new URL(`${this.base.pathname.replace(/\/+$/, '')}/galene-api/v0/${path}`, this.base);
  }

  async send(method: string, url: URL, opts: { body?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...opts.headers };
    const c = this.opts.credentials;
    if (c.token) headers.authorization = `Bearer ${c.token}`;
    else if (c.username !== undefined && c.username !== '') headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
    if (opts.body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(opts.body));
    }
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<ApiResponse>((resolve, reject) => {
      const req = request(url, { method, headers, ...(url.protocol === 'https:' ? { rejectUnauthorized: !this.opts.insecure } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.unreachable(e)));
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.end(opts.body);
    });
  }

  /** Sends, and throws a CtlError unless the status is 2xx. */
  async ok(what: string, method: string, url: URL, opts: { body?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
    const r = await this.send(method, url, opts);
    if (r.status >= 200 && r.status < 300) return r;
    throw this.refused(what, r);
  }

  async getJson<T>(what: string, url: URL): Promise<{ value: T; etag: string | undefined }> {
    const r = await this.ok(what, 'GET', url);
    try {
      return { value: JSON.parse(r.body) as T, etag: header(r, 'etag') };
    } catch {
      throw new CtlError(`${what}: the server did not answer JSON (is ${this.base.origin} an Atrium or Galène server?)`);
    }
  }

  /** GET, change, PUT back with If-Match: a concurrent change makes it fail rather than be lost. */
  async update<T>(what: string, url: URL, change: (old: T) => T): Promise<void> {
    const { value, etag } = await this.getJson<T>(what, url);
    if (etag === undefined) throw new CtlError(`${what}: the server gave no ETag, so the change cannot be made safely`);
    await this.ok(what, 'PUT', url, { body: JSON.stringify(change(value)), headers: { 'if-match': etag } });
  }

  private refused(what: string, r: ApiResponse): CtlError {
    const said = r.body.trim().split('\n')[0]?.slice(0, 500) ?? '';
    let hint = '';
    if (r.status === 401) {
      hint =
        this.opts.credentials.token || this.opts.credentials.username
          ? ' (these credentials are not an administrator here: check --admin-username/--admin-password or --admin-token)'
          : ' (give --admin-username and --admin-password, or --admin-token, or store them with "atrium ctl initial-setup")';
    } else if (r.status === 403 && /read-only|writableGroups/.test(said)) {
      hint = ' (set "writableGroups": true in the server\'s data/config.json; "atrium ctl initial-setup" writes it so)';
    } else if (r.status === 412) {
      hint = ' (it exists already, or changed meanwhile: look at it again and retry)';
    }
    return new CtlError(`${what}: the server said ${r.status} ${r.statusText}${said ? `: ${said}` : ''}${hint}`, r.status);
  }

  private unreachable(e: NodeJS.ErrnoException): CtlError {
    const where = this.base.origin;
    if (e.code === 'ECONNREFUSED') return new CtlError(`cannot reach ${where}: connection refused; is the server running there? (set it with --server URL)`);
    if (e.code === 'ENOTFOUND') return new CtlError(`cannot reach ${where}: no such host; check --server`);
    if (/self[- ]signed|certificate|UNABLE_TO_VERIFY|CERT_/i.test(`${e.code} ${e.message}`)) {
      return new CtlError(`cannot reach ${where}: its TLS certificate is not trusted (${e.code ?? e.message}); for a self-signed certificate add --insecure`);
    }
    if (e.code === 'EPROTO' || /wrong version number/.test(e.message)) return new CtlError(`cannot reach ${where}: TLS failed (${e.message}); is the server plain HTTP? then use an http:// URL`);
    return new CtlError(`cannot reach ${where}: ${e.message}`);
  }
}

export function header(r: ApiResponse, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
