// .clients/ and .clients/<id>/.description (Atrium's): the live clients of a
// group and what the back end says about each, pushed to its peers at once.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Description } from '../../core/client.ts';
import type { AdminContext, MemberDirectory, Principal } from './context.ts';
import { HttpError, isRead, methodNotAllowed, readJson, sendEmpty, sendJson, validate } from './http.ts';

const MAX_DESCRIPTION_BYTES = 16 * 1024;
const descriptionBody = z
  .record(z.string(), z.unknown())
  .refine((v) => JSON.stringify(v).length <= MAX_DESCRIPTION_BYTES, { message: `must be at most ${MAX_DESCRIPTION_BYTES} bytes as JSON` })
  .nullable();

export function directory(ctx: AdminContext): MemberDirectory {
  if (ctx.deps.members === undefined) throw new HttpError(404, 'this server keeps no live clients here');
  return ctx.deps.members;
}

export async function clientList(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of clients', ['HEAD', 'GET']);
  const list = directory(ctx)
    .list(name)
    .map((m) => (m.username === undefined ? { id: m.id, description: m.description } : { id: m.id, username: m.username, description: m.description }));
  return sendJson(reply, 200, list);
}

export async function description(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, client: string, who: Principal): Promise<FastifyReply> {
  const what = `client "${client}" of group "${name}"`;
  const members = directory(ctx);
  if (isRead(req.method)) {
    const m = members.get(name, client);
    if (m === undefined) throw new HttpError(404, `there is no ${what}; clients come and go, list them with .clients/`);
    return sendJson(reply, 200, m.description);
  }
  let next: Description;
  if (req.method === 'PUT') next = validate(descriptionBody, readJson(req), 'description (a JSON object, or null)');
  else if (req.method === 'DELETE') next = null;
  else throw methodNotAllowed(req.method, `the description of ${what}`, ['HEAD', 'GET', 'PUT', 'DELETE']);
  if (!members.describe(name, client, next)) throw new HttpError(404, `there is no ${what}; clients come and go, list them with .clients/`);
  ctx.log.info({ group: name, client, by: who.name }, next === null ? 'admin API: description removed' : 'admin API: description set');
  return sendEmpty(reply, 204);
}
