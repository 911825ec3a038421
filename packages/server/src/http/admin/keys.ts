// .keys: a group's token keys (authKeys), write-only: replaced or removed.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type JWK, importJWK } from 'jose';
import { z } from 'zod';
import { jwkSchema } from '../../groups/description.ts';
import { GroupNotFoundError } from '../../groups/store.ts';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, methodNotAllowed, readJson, sendEmpty, validate } from './http.ts';

const jwkSet = z.looseObject({ keys: z.array(jwkSchema) });

export async function keys(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
  let next: Record<string, unknown>[] | undefined;
  if (req.method === 'PUT') {
    ctx.requireWritable();
    const set = validate(jwkSet, readJson(req, 'application/jwk-set+json'), 'JSON Web Key set');
    for (const [i, key] of set.keys.entries()) {
      try {
        await importJWK(key as JWK, key.alg);
      } catch (err) {
        throw new HttpError(400, `invalid JSON Web Key set: key [${i}] cannot be used: ${(err as Error).message}`);
      }
    }
    next = set.keys;
  } else if (req.method === 'DELETE') {
    ctx.requireWritable();
    next = undefined;
  } else {
    throw methodNotAllowed(req.method, `the keys of group "${name}" (they are write-only)`, ['PUT', 'DELETE']);
  }
  const r = await ctx.groups.modifyRaw(name, (cur) => {
    if (cur === undefined) throw new GroupNotFoundError(name);
    const out = { ...cur.json };
    if (next === undefined) delete out.authKeys;
    else out.authKeys = next;
    return out;
  });
  ctx.log.info({ group: name, by: who.name, count: next?.length ?? 0 }, 'admin API: token keys replaced');
  return sendEmpty(reply, 204, r.etag);
}
