// .../.password: set a user's password. An administrator may PUT a
// definition (a hash, a wildcard) or POST a password the server hashes; the
// user themself may only POST a new password.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { passwordDefinitionSchema } from '../../groups/description.ts';
import { PasswordChangeError, setOwnPassword } from '../../groups/password-change.ts';
import { hashPassword } from '../../groups/passwords.ts';
import { GroupNotFoundError } from '../../groups/store.ts';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, methodNotAllowed, readJson, readText, sendEmpty, validate } from './http.ts';
import { type UserRef, describeUser } from './paths.ts';
import { rawUser, withUser } from './users.ts';

/** How each refusal of a user's own password change reads over HTTP. */
const PASSWORD_CHANGE_STATUS: Record<PasswordChangeError['code'], number> = {
  'read-only': 403,
  'no-such-user': 404,
  'not-authorised': 403,
  throttled: 429,
  'bad-password': 400,
};

export async function password(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, u: UserRef, who: Principal): Promise<FastifyReply> {
  const what = `the password of ${describeUser(u, name)}`;
  if (!who.admin) {
    // The user themself: a password, hashed by the server, and nothing else.
    if (req.method !== 'POST') {
      throw new HttpError(
        403,
        `${req.method === 'PUT' ? 'a password definition (a hash or a wildcard)' : 'removing a password'} is for administrators: as ${describeUser(u, name)}, POST your new password as text/plain`,
      );
    }
    ctx.requireWritable();
    const r = await setOwnPassword({ groups: ctx.groups, config: ctx.deps.config(), group: name, username: who.name, newPassword: readText(req) }).catch((e: unknown) => {
      throw e instanceof PasswordChangeError ? new HttpError(PASSWORD_CHANGE_STATUS[e.code], e.message) : e;
    });
    ctx.log.info({ group: name, user: who.name, by: who.name }, 'admin API: own password changed');
    return sendEmpty(reply, 204, r.etag);
  }
  let next: unknown;
  if (req.method === 'PUT') {
    ctx.requireWritable();
    next = validate(passwordDefinitionSchema, readJson(req), 'password definition');
  } else if (req.method === 'POST') {
    ctx.requireWritable();
    next = await hashPassword(readText(req));
  } else if (req.method === 'DELETE') {
    ctx.requireWritable();
    next = undefined;
  } else {
    throw methodNotAllowed(req.method, `${what} (it is write-only)`, ['PUT', 'POST', 'DELETE']);
  }
  const r = await ctx.groups.modifyRaw(name, (cur) => {
    if (cur === undefined) throw new GroupNotFoundError(name);
    const old = rawUser(cur.json, u);
    if (old === undefined) throw new HttpError(404, `${describeUser(u, name)} does not exist; create it first with PUT`);
    const entry = { ...old };
    if (next === undefined) delete entry.password;
    else entry.password = next;
    return withUser(cur.json, u, entry);
  });
  ctx.log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, next === undefined ? 'admin API: password removed' : 'admin API: password set');
  return sendEmpty(reply, 204, r.etag);
}
