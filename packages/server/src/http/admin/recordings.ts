// .recordings/ and .recordings/<file> (Atrium's): a group's recordings on
// disk, listed and deleted by administrators (http/recordings.ts serves them
// to users with `record`).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext, AdminRecordings, Principal } from './context.ts';
import { HttpError, isRead, methodNotAllowed, sendEmpty, sendJson } from './http.ts';

function store(ctx: AdminContext): AdminRecordings {
  if (ctx.deps.recordings === undefined) throw new HttpError(404, 'recordings not found: this server runs without a media engine, so it records nothing');
  return ctx.deps.recordings;
}

function requireGroup(ctx: AdminContext, name: string): void {
  if (!ctx.groups.get(name)) throw new HttpError(404, `group "${name}" not found`);
}

/** GET .recordings/: the group's files, those still being written (.part) included. */
export async function recordingList(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  const recordings = store(ctx);
  requireGroup(ctx, name);
  if (!isRead(req.method)) throw methodNotAllowed(req.method, '.recordings/', ['HEAD', 'GET']);
  return sendJson(reply, 200, await recordings.list(name));
}

/** DELETE .recordings/<file>: 204; 404 when there is no such file, 409 while it is being written. */
export async function recording(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, file: string, who: Principal): Promise<FastifyReply> {
  const recordings = store(ctx);
  requireGroup(ctx, name);
  if (req.method !== 'DELETE') throw methodNotAllowed(req.method, 'a recording', ['DELETE']);
  const refused = await recordings.remove(name, file);
  if (refused) throw new HttpError(refused.status, refused.message);
  ctx.log.info({ group: name, file, by: who.name }, 'admin API: recording deleted');
  return sendEmpty(reply, 204);
}
