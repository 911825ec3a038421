// Galène's HTTP side: group pages and the public JSON views, /group/<name>/,
// its .status, /public-groups.json (what Galène's clients read before they
// connect). The group page is the web app (http/web.ts), a Galène client
// itself, or a placeholder when the app is not built.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GroupInfo } from '../../core/client.ts';
import type { GroupLocation, Registry } from '../../core/registry.ts';
import type { GroupDescription } from '../../groups/index.ts';
import { type PlaceOptions, groupPath } from '../../http/place.ts';
import type { WebApp } from '../../http/web.ts';
import { galenePlace, status } from './render.ts';

export function registerGroupPages(app: FastifyInstance, deps: { registry: Registry; place: () => PlaceOptions; web?: WebApp }): void {
  const { registry } = deps;

  /** The group's status as the node holding it sees it (in a cluster, maybe another node). */
  const infoOf = (name: string, desc: GroupDescription, where: GroupLocation): GroupInfo => {
    const live = where.kind === 'here' ? registry.get(name) : undefined;
    if (live) return live.info();
    const info: GroupInfo = where.kind === 'elsewhere' ? { name, locked: where.locked, clientCount: where.clientCount, data: {} } : { name, locked: desc.autolock, clientCount: 0, data: {} };
    if (desc.displayName !== undefined) info.displayName = desc.displayName;
    if (desc.description !== undefined) info.description = desc.description;
    if (desc.authServer !== undefined) info.authServer = desc.authServer;
    if (desc.authPortal !== undefined) info.authPortal = desc.authPortal;
    return info;
  };

  /** Where clients connect for a group: this node, or the node that holds it. */
  const placeOf = (host: string | undefined, where: GroupLocation) => galenePlace(host, where.kind === 'elsewhere' ? { ...deps.place(), nodeUrl: where.node.publicUrl } : deps.place());

  app.get('/public-groups.json', async (req, reply) => {
    const list = registry
      .describeAll()
      .filter((d) => d.public)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((d) => {
        const where = registry.locateCached(d.name);
        return status(infoOf(d.name, d, where), placeOf(req.headers.host, where), { counts: true });
      });
    return reply.header('cache-control', 'no-cache').send(list);
  });

  app.get('/group/*', async (req: FastifyRequest<{ Params: { '*': string } }>, reply: FastifyReply) => {
    const rest = req.params['*'];
    // Galène's main page asks for .status.json, which Galène redirects to .status.
    if (rest.endsWith('/.status.json') || rest === '.status.json') {
      const path = req.url.split('?')[0]!;
      return reply.redirect(`${path.slice(0, -'.json'.length)}`, 308);
    }
    const isStatus = rest.endsWith('/.status') || rest === '.status';
    const raw = isStatus ? rest.slice(0, -'.status'.length) : rest;
    // To the URL as sent, still percent-encoded: the decoded name may hold what a header cannot (CR, LF).
    if (!raw.endsWith('/')) return reply.redirect(isStatus ? `/group/${raw}/` : `${req.url.split('?')[0]!}/`, 301);
    let name: string;
    try {
      name = raw.slice(0, -1).split('/').map(decodeURIComponent).join('/');
    } catch {
      return reply.code(400).send({ error: 'bad-request', message: 'the group name in the URL is not valid percent-encoding' });
    }
    const desc = registry.describe(name);
    if (!desc) {
      return reply.code(404).send({ error: 'no-such-group', message: `there is no group called "${name}" on this server` });
    }
    if (isStatus) {
      // A client reading the status is about to join: in a cluster the group is placed now, so it connects to its node.
      const where = await registry.locate(name, { place: true });
      return reply.header('cache-control', 'no-cache').send(status(infoOf(name, desc, where), placeOf(req.headers.host, where), { counts: desc.public }));
    }
    const app = (await deps.web?.page()) ?? null;
    return reply
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(app ?? groupPage(name, desc));
  });
}

function groupPage(name: string, desc: GroupDescription): string {
  const title = escapeHtml(desc.displayName ?? name);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Atrium</title></head>
<body><main><h1>${title}</h1>
${desc.description ? `<p>${escapeHtml(desc.description)}</p>` : ''}
<p>This is the Atrium group <code>${escapeHtml(name)}</code>. Any Galène-compatible client can join it:
its status is at <a href="${groupPath(name)}.status">.status</a>.</p>
</main></body></html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
