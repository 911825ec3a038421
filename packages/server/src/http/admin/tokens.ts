// .tokens/ and .tokens/<token>: a group's stateful tokens (invite links),
// listed, created, read with their ETag, replaced and deleted.
import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { withoutNulls } from '@atrium/protocol/galene';
import { wellFormedString } from '@atrium/protocol/text';
import type { StatefulToken } from '../../auth/tokens.ts';
import { LIMITS } from '../../core/vocabulary.ts';
import { expandPermissions, permissionsFieldSchema } from '../../groups/description.ts';
import { checkPreconditions, etagOf } from '../../groups/store.ts';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, asRecord, conditionalGet, isRead, methodNotAllowed, preconditionsOf, readJson, sendEmpty, sendJson, validate } from './http.ts';

const rfc3339 = z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time such as "2030-01-31T12:00:00Z"' });
const tokenBody = z.strictObject({
  username: wellFormedString(LIMITS.usernameChars).optional(),
  permissions: permissionsFieldSchema.optional(),
  expires: rfc3339.optional(),
  'not-before': rfc3339.optional(),
  issuedBy: wellFormedString(LIMITS.usernameChars).optional(),
  issuedAt: rfc3339.optional(),
  /** Galène's name for a hierarchical (or, with the root group, global) token. */
  includeSubgroups: z.boolean().optional(),
  /** The name Atrium used before; still read. */
  'include-subgroups': z.boolean().optional(),
  // Galène's GET of a token has these empty; a client that PUTs it back sends them so.
  token: z.literal('').optional(),
  group: z.literal('').optional(),
});

export function tokenEtag(t: StatefulToken): string {
  return etagOf(JSON.stringify(t));
}

export function tokenFromBody(ctx: AdminContext, raw: unknown, group: string): Omit<StatefulToken, 'token' | 'group'> {
  // Galène decodes with Go, which reads null as "not set".
  const record = asRecord(raw);
  const json = record === undefined ? raw : withoutNulls(record);
  const obj = asRecord(json);
  if (obj !== undefined && ((Object.hasOwn(obj, 'token') && obj.token !== '') || (Object.hasOwn(obj, 'group') && obj.group !== ''))) {
    throw new HttpError(400, 'overspecified token: the body must not contain "token" or "group"; they come from the URL');
  }
  const body = validate(tokenBody, json, 'token');
  const desc = ctx.groups.get(group);
  const out: Omit<StatefulToken, 'token' | 'group'> = {
    permissions: expandPermissions(body.permissions, desc),
  };
  if (body.username !== undefined) out.username = body.username;
  if (body.expires !== undefined) out.expires = body.expires;
  if (body['not-before'] !== undefined) out['not-before'] = body['not-before'];
  if (body.issuedBy !== undefined) out.issuedBy = body.issuedBy;
  if (body.issuedAt !== undefined) out.issuedAt = body.issuedAt;
  const sub = body.includeSubgroups ?? body['include-subgroups'];
  if (sub !== undefined) out.includeSubgroups = sub;
  if (out.expires !== undefined && out['not-before'] !== undefined && Date.parse(out['not-before']) >= Date.parse(out.expires)) {
    throw new HttpError(400, 'invalid token: "not-before" must be earlier than "expires"');
  }
  return out;
}

export async function tokenList(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
  if (isRead(req.method)) {
    return sendJson(
      reply,
      200,
      ctx.tokens
        .list(name)
        .filter((t) => t.group === name)
        .map((t) => t.token),
    );
  }
  if (req.method === 'POST') {
    const fields = tokenFromBody(ctx, readJson(req), name);
    const t: StatefulToken = { ...fields, token: randomBytes(16).toString('base64url'), group: name };
    t.issuedBy ??= who.name;
    t.issuedAt ??= new Date().toISOString();
    await ctx.tokens.put(t);
    ctx.log.info({ group: name, by: who.name }, 'admin API: token created');
    reply.header('location', encodeURIComponent(t.token));
    return sendEmpty(reply, 201, tokenEtag(t));
  }
  throw methodNotAllowed(req.method, 'the list of tokens', ['HEAD', 'GET', 'POST']);
}

export async function token(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, tok: string, who: Principal): Promise<FastifyReply> {
  const what = `token in group "${name}"`;
  const old = ctx.tokens.get(tok);
  const mine = old !== undefined && old.group === name ? old : undefined;
  if (isRead(req.method)) {
    if (mine === undefined) throw new HttpError(404, `no such ${what}`);
    const etag = tokenEtag(mine);
    if (conditionalGet(req, reply, etag, what)) return reply;
    const { token: _t, group: _g, ...fields } = mine;
    return sendJson(reply, 200, fields, etag);
  }
  if (req.method === 'PUT') {
    if (old !== undefined && old.group !== name) {
      throw new HttpError(409, 'this token already exists in a different group; choose another token name');
    }
    if (tok.length > 256) throw new HttpError(400, 'token names are at most 256 characters long');
    checkPreconditions(mine === undefined ? undefined : tokenEtag(mine), preconditionsOf(req), what);
    const t: StatefulToken = { ...tokenFromBody(ctx, readJson(req), name), token: tok, group: name };
    await ctx.tokens.put(t);
    ctx.log.info({ group: name, by: who.name }, mine === undefined ? 'admin API: token created' : 'admin API: token updated');
    return sendEmpty(reply, mine === undefined ? 201 : 204, tokenEtag(t));
  }
  if (req.method === 'DELETE') {
    if (mine === undefined) throw new HttpError(404, `no such ${what}`);
    checkPreconditions(tokenEtag(mine), preconditionsOf(req), what);
    await ctx.tokens.delete(tok);
    ctx.log.info({ group: name, by: who.name }, 'admin API: token deleted');
    return sendEmpty(reply, 204);
  }
  throw methodNotAllowed(req.method, 'a token', ['HEAD', 'GET', 'PUT', 'DELETE']);
}
