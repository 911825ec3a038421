// The web app (packages/web, built by Vite into packages/web/dist): its
// hashed assets under /assets/, and its page at / (public groups, join by
// name) and at /group/<name>/ (through registerGroupPages, which keeps the
// placeholder page when the app is not built). The server runs without the
// app; it then says how to build it.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';

export const WEB_DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

export interface WebApp {
  /** The app's HTML page, or null when the app is not built. */
  page(): Promise<string | null>;
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Atrium</title></head>
<body><main><h1>Atrium</h1>
<p>The server is running, but its web app has not been built, so there is no page to show here.</p>
<p>Build it with <code>npm run build -w @atrium/web</code> (or restart with <code>npm start</code>, which builds it),
then reload this page. Galène-compatible clients can join groups at <code>/group/&lt;name&gt;/</code> meanwhile.</p>
</main></body></html>`;

export async function registerWebApp(app: FastifyInstance, deps: { log: Logger; dist?: string }): Promise<WebApp> {
  const dist = deps.dist ?? WEB_DIST;
  const indexFile = join(dist, 'index.html');
  if (!existsSync(indexFile)) {
    deps.log.warn({ dist }, 'the web app is not built: run "npm run build -w @atrium/web" (npm start does it); serving placeholder pages meanwhile');
  }
  // Vite names assets by content hash: they never change, so cache them for good.
  await app.register(fastifyStatic, {
    root: join(dist, 'assets'),
    prefix: '/assets/',
    index: false,
    immutable: true,
    maxAge: '365d',
  });
  const web: WebApp = {
    // Read afresh each time: a rebuild while the server runs is picked up.
    page: () => readFile(indexFile, 'utf8').catch(() => null),
  };
  app.get('/', async (_req, reply) => {
    const html = await web.page();
    return reply
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(html ?? NOT_BUILT);
  });
  return web;
}
