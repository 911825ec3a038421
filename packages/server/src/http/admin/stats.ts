// GET .stats: the server's groups, clients and streams with their statistics.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext } from './context.ts';
import { isRead, methodNotAllowed, sendJson } from './http.ts';

export async function stats(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (!isRead(req.method)) throw methodNotAllowed(req.method, '.stats', ['HEAD', 'GET']);
  return sendJson(reply, 200, (await ctx.deps.stats()) ?? null);
}
