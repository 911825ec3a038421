// /recordings/<group>/ as Galène serves it, to users with the `record`
// permission in that group (HTTP Basic with the group's users, or a bearer
// token): the list of files (HTML, or JSON when asked with
// `Accept: application/json` or `?format=json`), each file for download
// with range requests, and Galène's delete form (POST q=delete&filename=).
// The admin API deletes and lists them too (see admin.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CoreError, retryAfterHeader } from '../core/errors.ts';
import type { GroupRegistry } from '../core/registry.ts';
import type { Logger } from '../log.ts';
import { PART } from '../recording/file.ts';
import { RecordingNameError, type RecordingStore, type RecordingEntry } from '../recording/store.ts';
import { type PlaceOptions, placeFor } from './place.ts';

export interface RecordingsDeps {
  registry: GroupRegistry;
  store: RecordingStore;
  /** Whether the group is being recorded now (its .part files are then left alone). */
  recording: (group: string) => boolean;
  place: () => PlaceOptions;
  log: Logger;
  /** The address a request came from, for throttling failed logins. */
  address: (req: FastifyRequest) => string | undefined;
}

const FORM_BYTES = 16 * 1024;

export function parseAuthorization(header: string | undefined): { username?: string; password?: string; token?: string } | undefined {
  if (!header) return undefined;
  const [scheme, value = ''] = header.trim().split(/\s+/, 2);
  if (/^basic$/i.test(scheme ?? '')) {
    let decoded: string;
    try {
      decoded = Buffer.from(value, 'base64').toString('utf8');
    } catch {
      return undefined;
    }
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (/^bearer$/i.test(scheme ?? '') && value) return { token: value };
  return undefined;
}

export async function registerRecordings(app: FastifyInstance, deps: RecordingsDeps): Promise<void> {
  const { registry, store } = deps;

  /** 401/403 unless the request's credentials have `record` in the group. */
  async function authorise(req: FastifyRequest, reply: FastifyReply, group: string): Promise<boolean> {
    const realm = `recordings/${group}`;
    const creds = parseAuthorization(req.headers.authorization);
    const refuse = (status: 401 | 403, message: string) => {
      if (status === 401) reply.header('www-authenticate', `Basic realm="${realm.replace(/"/g, '')}"`);
      reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
      return false;
    };
    if (!creds) return refuse(401, `the recordings of group "${group}" need a username and password (HTTP Basic) or a token with the "record" permission`);
    let permissions: readonly string[];
    try {
      const who = await registry.identify(group, { ...creds, address: deps.address(req), via: 'recordings' }, placeFor(req.headers.host, deps.place()).groupUrl(group));
      permissions = who.permissions;
    } catch (e) {
      if (e instanceof CoreError && e.code === 'rate-limited') {
        // As the admin API: 429 with Retry-After, and no challenge (the credentials were not looked at).
        reply.code(429).headers(retryAfterHeader(e)).type('text/plain; charset=utf-8').send(`${e.message}\n`);
        return false;
      }
      if (e instanceof CoreError) return refuse(401, `not authorised: ${e.message}`);
      throw e;
    }
    if (!permissions.includes('record')) return refuse(403, `you need the "record" permission in group "${group}" to see its recordings`);
    return true;
  }

  await app.register(async (scope) => {
    // Galène's delete button posts a form.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BYTES }, (_req, body, done) =>
      done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );

    scope.route({
      method: ['GET', 'HEAD', 'POST'],
      url: '/recordings/*',
      handler: async (req: FastifyRequest<{ Params: { '*': string } }>, reply) => {
        const rest = req.params['*'];
        let segments: string[];
        try {
          segments = rest.split('/').map(decodeURIComponent);
        } catch {
          return reply.code(400).type('text/plain').send('the URL is not valid percent-encoding\n');
        }
        if (segments.length === 1) {
          if (segments[0] === '') return reply.code(400).type('text/plain').send('name a group: /recordings/<group>/\n');
          // To the URL as sent, still percent-encoded: the decoded name may hold what a header cannot (CR, LF).
          return reply.redirect(`${req.url.split('?')[0]!}/`, 308);
        }
        const file = segments.pop()!;
        const group = segments.join('/');
        if (!registry.describe(group)) return reply.code(404).type('text/plain').send(`there is no group called "${group}" on this server\n`);
        if (!(await authorise(req, reply, group))) return reply;

        if (file === '') {
          if (req.method === 'POST') return remove(req, reply, group);
          const list = await store.list(group);
          const query = req.query as Record<string, string | undefined>;
          reply.header('cache-control', 'no-cache');
          if (query.format === 'json' || wantsJson(req.headers.accept)) return reply.send(list);
          return reply.type('text/html; charset=utf-8').send(listingPage(group, list));
        }
        if (req.method === 'POST') return reply.code(405).header('allow', 'GET, HEAD').send();
        let found: Awaited<ReturnType<RecordingStore['find']>>;
        try {
          found = await store.find(group, file);
        } catch (e) {
          if (e instanceof RecordingNameError) return reply.code(400).type('text/plain').send(`${e.message}\n`);
          throw e;
        }
        if (!found) return reply.code(404).type('text/plain').send(`group "${group}" has no recording called "${file}"\n`);
        // a file written in the last minute may still grow: not cached
        const fresh = Date.now() - found.modified.getTime() < 60_000 || file.endsWith(PART);
        return reply.sendFile(file, store.dirOf(group), { cacheControl: false, acceptRanges: true, dotfiles: 'deny' }).header('cache-control', fresh ? 'no-cache' : 'private, max-age=3600');
      },
    });
  });

  /** Galène's form: q=delete, filename=<file>; back to the listing (303). */
  async function remove(req: FastifyRequest, reply: FastifyReply, group: string): Promise<FastifyReply> {
    const form = (req.body ?? {}) as Record<string, string | undefined>;
    if (form.q !== 'delete') return reply.code(400).type('text/plain').send('unknown query: post q=delete and filename=<file>\n');
    const name = form.filename ?? '';
    const refused = await deleteRecording(deps, group, name);
    if (refused) return reply.code(refused.status).type('text/plain').send(`${refused.message}\n`);
    deps.log.info({ group, file: name }, 'recording deleted');
    return reply.redirect(`/recordings/${group.split('/').map(encodeURIComponent).join('/')}/`, 303);
  }
}

/** Deletes one recording; undefined when done, else why not (as an HTTP status and a sentence). */
export async function deleteRecording(deps: Pick<RecordingsDeps, 'store' | 'recording'>, group: string, name: string): Promise<{ status: number; message: string } | undefined> {
  try {
    if (name.endsWith(PART) && deps.recording(group)) {
      return { status: 409, message: `"${name}" is still being recorded; stop the recording (unrecord) before deleting it` };
    }
    if (!(await deps.store.remove(group, name))) return { status: 404, message: `group "${group}" has no recording called "${name}"` };
    return undefined;
  } catch (e) {
    if (e instanceof RecordingNameError) return { status: 400, message: e.message };
    throw e;
  }
}

function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const json = accept.indexOf('application/json');
  const html = accept.indexOf('text/html');
  return json >= 0 && (html < 0 || json < html);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function listingPage(group: string, list: RecordingEntry[]): string {
  const rows = list
    .map((f) => {
      const name = escapeHtml(f.name);
      const size = f.size >= 1 << 20 ? `${(f.size / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(f.size / 1024)} KiB`;
      const status = f.complete ? '' : ' (recording)';
      const del = f.complete ? `<form method="post" action="./"><input type="hidden" name="filename" value="${name}"><button type="submit" name="q" value="delete">Delete</button></form>` : '';
      return `<tr><td><a href="./${encodeURIComponent(f.name)}">${name}</a>${status}</td><td>${size}</td><td><time datetime="${f.modified}">${f.modified.replace('T', ' ').slice(0, 19)}</time></td><td>${del}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recordings of ${escapeHtml(group)}</title></head>
<body><main><h1>Recordings of ${escapeHtml(group)}</h1>
${list.length === 0 ? '<p>No recordings yet.</p>' : `<table>\n<thead><tr><th>File</th><th>Size</th><th>Last written (UTC)</th><th></th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>`}
<p><a href="?format=json">This list as JSON</a></p>
</main></body></html>`;
}
