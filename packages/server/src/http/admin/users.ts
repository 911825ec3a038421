// .users/, .users/<name>, .wildcard-user and .empty-user: a group's users
// and their permissions (never their passwords).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { permissionsFieldSchema } from '../../groups/description.ts';
import { GroupNotFoundError, checkPreconditions } from '../../groups/store.ts';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, asRecord, conditionalGet, isRead, methodNotAllowed, preconditionsOf, readJson, sendEmpty, sendJson, validate } from './http.ts';
import { type UserRef, describeUser } from './paths.ts';

const userBody = z.strictObject({ permissions: permissionsFieldSchema.optional() });

export function rawUser(json: Record<string, unknown>, u: UserRef): Record<string, unknown> | undefined {
  if (u.kind === 'wildcard') return asRecord(json['wildcard-user']);
  const users = asRecord(json.users);
  return users !== undefined && Object.hasOwn(users, u.name) ? asRecord(users[u.name]) : undefined;
}

/** A copy of the group JSON with one user entry replaced (or removed with `undefined`). */
export function withUser(json: Record<string, unknown>, u: UserRef, entry: Record<string, unknown> | undefined): Record<string, unknown> {
  const out = { ...json };
  if (u.kind === 'wildcard') {
    if (entry === undefined) delete out['wildcard-user'];
    else out['wildcard-user'] = entry;
    return out;
  }
  const users = { ...(asRecord(json.users) ?? {}) };
  if (entry === undefined) delete users[u.name];
  else users[u.name] = entry;
  out.users = users;
  return out;
}

export async function userList(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of users', ['HEAD', 'GET']);
  const cur = await ctx.existing(name);
  if (conditionalGet(req, reply, cur.etag, `group "${name}"`)) return reply;
  return sendJson(reply, 200, Object.keys(asRecord(cur.json.users) ?? {}).sort(), cur.etag);
}

export async function user(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, u: UserRef, who: Principal): Promise<FastifyReply> {
  const what = describeUser(u, name);
  if (isRead(req.method)) {
    const cur = await ctx.existing(name);
    const entry = rawUser(cur.json, u);
    if (entry === undefined) throw new HttpError(404, `${what} does not exist`);
    if (conditionalGet(req, reply, cur.etag, what)) return reply;
    const { password: _secret, ...sanitised } = entry;
    return sendJson(reply, 200, sanitised, cur.etag);
  }
  if (req.method === 'PUT') {
    ctx.requireWritable();
    const json = readJson(req);
    if (asRecord(json) !== undefined && Object.hasOwn(asRecord(json)!, 'password')) {
      throw new HttpError(400, 'a user definition sent here must not contain a password: set it with PUT (JSON) or POST (text/plain) on .../.password');
    }
    const body = validate(userBody, json, 'user definition');
    const pre = preconditionsOf(req);
    let created = false;
    const r = await ctx.groups.modifyRaw(name, (cur) => {
      if (cur === undefined) throw new GroupNotFoundError(name);
      const old = rawUser(cur.json, u);
      checkPreconditions(old === undefined ? undefined : cur.etag, pre, what);
      created = old === undefined;
      const entry: Record<string, unknown> = {};
      if (old !== undefined && Object.hasOwn(old, 'password')) entry.password = old.password;
      if (body.permissions !== undefined) entry.permissions = (json as Record<string, unknown>).permissions;
      return withUser(cur.json, u, entry);
    });
    ctx.log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, created ? 'admin API: user created' : 'admin API: user updated');
    return sendEmpty(reply, created ? 201 : 204, r.etag);
  }
  if (req.method === 'DELETE') {
    ctx.requireWritable();
    const pre = preconditionsOf(req);
    const r = await ctx.groups.modifyRaw(name, (cur) => {
      if (cur === undefined) throw new GroupNotFoundError(name);
      if (rawUser(cur.json, u) === undefined) throw new HttpError(404, `${what} does not exist`);
      checkPreconditions(cur.etag, pre, what);
      return withUser(cur.json, u, undefined);
    });
    ctx.log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, 'admin API: user deleted');
    return sendEmpty(reply, 204, r.etag);
  }
  throw methodNotAllowed(req.method, what, ['HEAD', 'GET', 'PUT', 'DELETE']);
}
