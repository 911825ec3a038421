// .groups/ and .groups/<name>: the list of groups, and one group's
// definition (read with its ETag, replaced, deleted) without its secrets.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, conditionalGet, isRead, jsonObject, methodNotAllowed, preconditionsOf, readJson, sendEmpty, sendJson, validate } from './http.ts';

/** Fields that hold credentials and never leave the server. */
export const SECRET_GROUP_FIELDS = ['users', 'wildcard-user', 'authKeys', 'op', 'presenter', 'other'];

export function sanitiseGroup(json: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!SECRET_GROUP_FIELDS.includes(k)) out[k] = v;
  return out;
}

export async function groupList(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of groups', ['HEAD', 'GET']);
  return sendJson(
    reply,
    200,
    ctx.groups.list().map((g) => g.name),
  );
}

export async function group(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
  const what = `group "${name}"`;
  if (isRead(req.method)) {
    const cur = await ctx.existing(name);
    if (conditionalGet(req, reply, cur.etag, what)) return reply;
    return sendJson(reply, 200, sanitiseGroup(cur.json), cur.etag);
  }
  if (req.method === 'PUT') {
    ctx.requireWritable();
    const body = validate(jsonObject, readJson(req), 'group definition');
    const secret = SECRET_GROUP_FIELDS.filter((k) => Object.hasOwn(body, k));
    if (secret.length > 0) {
      throw new HttpError(400, `the group definition must not contain ${secret.map((k) => `"${k}"`).join(', ')}: manage users with .users/ and .wildcard-user, and keys with .keys`);
    }
    const r = await ctx.groups.modifyRaw(
      name,
      (cur) => {
        const next: Record<string, unknown> = { ...body };
        for (const k of SECRET_GROUP_FIELDS) if (cur !== undefined && Object.hasOwn(cur.json, k)) next[k] = cur.json[k];
        return next;
      },
      preconditionsOf(req),
    );
    ctx.log.info({ group: name, by: who.name }, r.created ? 'admin API: group created' : 'admin API: group updated');
    return sendEmpty(reply, r.created ? 201 : 204, r.etag);
  }
  if (req.method === 'DELETE') {
    ctx.requireWritable();
    await ctx.groups.deleteRaw(name, preconditionsOf(req));
    ctx.log.info({ group: name, by: who.name }, 'admin API: group deleted');
    return sendEmpty(reply, 204);
  }
  throw methodNotAllowed(req.method, what, ['HEAD', 'GET', 'PUT', 'DELETE']);
}
