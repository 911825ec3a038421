// GET .stats: the server's groups, clients and streams with their statistics.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext } from './context.ts';
import { isRead, methodNotAllowed, sendJson } from './http.ts';

export async function stats(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (!isRead(req.method)) throw methodNotAllowed(req.method, '.stats', ['HEAD', 'GET']);
  const here = (await ctx.deps.stats()) ?? [];
  const cluster = ctx.deps.cluster;
  // In a cluster, every node's groups (each node answers for its own when asked by another).
  if (cluster && !cluster.forwarded(req) && Array.isArray(here)) return sendJson(reply, 200, [...here, ...(await cluster.otherStats(req))]);
  return sendJson(reply, 200, here);
}
