// Another web client instead of Atrium's own (`atrium serve --static DIR`,
// like Galène's `-static`): every file of DIR is served at /, and each group
// page /group/<name>/ is DIR/galene.html, so Galène's own client (its
// static/ directory) runs unchanged against Atrium.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import type { WebApp } from './web.ts';

/** The page a group URL serves, as in Galène. */
export const GROUP_PAGE = 'galene.html';

export async function registerStaticClient(app: FastifyInstance, deps: { dir: string; log: Logger }): Promise<WebApp> {
  const dir = resolve(deps.dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`--static ${deps.dir}: no such directory; give the directory of a web client (Galène's is its static/ folder)`);
  }
  const page = join(dir, GROUP_PAGE);
  if (!existsSync(page)) {
    throw new Error(`--static ${deps.dir}: it has no ${GROUP_PAGE}, the page served at /group/<name>/; is this the static/ folder of a Galène client?`);
  }
  // Files may change under us (a client being developed): revalidate each time, as Galène does.
  await app.register(fastifyStatic, { root: dir, prefix: '/', index: ['index.html'], cacheControl: true, maxAge: 0, dotfiles: 'deny', redirect: true });
  deps.log.info({ dir }, 'serving the web client in --static DIR');
  return {
    page: () => readFile(page, 'utf8').catch(() => null),
  };
}
