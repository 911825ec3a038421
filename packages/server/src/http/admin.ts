// Galène's administrative HTTP API under /galene-api/v0/ (galene-api.md), so
// that `galenectl` and other Galène tools can manage Atrium: statistics,
// group definitions with ETags, users, passwords, the wildcard user, token
// keys and stateful tokens. Passwords and keys are never returned nor logged.
// Atrium adds the live clients of a group and their descriptions (what the
// back end says about a client, pushed to its mesh peers at once):
//   GET               .groups/<group>/.clients/                 [{id, username?, description}]
//   GET, PUT, DELETE  .groups/<group>/.clients/<id>/.description  a JSON object, or null
// This module is the routing: the URL space is admin/paths.ts, who may ask
// admin/auth.ts, and each resource has its handler module in admin/.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase } from 'fastify';
import { GroupFileError } from '../groups/description.ts';
import { GroupNotFoundError, GroupStoreError, PreconditionFailedError, validateGroupName } from '../groups/store.ts';
import { authenticate } from './admin/auth.ts';
import { type AdminApiDeps, type AdminContext, adminContext } from './admin/context.ts';
import { clientList, description } from './admin/descriptions.ts';
import { group, groupList } from './admin/groups.ts';
import { HttpError, MAX_BODY_BYTES, PREFIX, sendError } from './admin/http.ts';
import { keys } from './admin/keys.ts';
import { password } from './admin/passwords.ts';
import { parseTarget, groupOf } from './admin/paths.ts';
import { stats } from './admin/stats.ts';
import { token, tokenList } from './admin/tokens.ts';
import { user, userList } from './admin/users.ts';

export type { StatefulToken } from '../auth/tokens.ts';
export type { AdminApiDeps, MemberDirectory, TokenStoreLike } from './admin/context.ts';

async function dispatch(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const target = parseTarget(new URL(req.url, 'http://localhost').pathname);
  const g = groupOf(target);
  // Tokens may be attached to the root ('') of the group hierarchy.
  if (g !== undefined && !(g === '' && (target.kind === 'tokens' || target.kind === 'token'))) validateGroupName(g);
  const who = await authenticate(ctx, req, target);
  switch (target.kind) {
    case 'stats':
      return stats(ctx, req, reply);
    case 'groups':
      return groupList(ctx, req, reply);
    case 'group':
      return group(ctx, req, reply, target.group, who);
    case 'users':
      return userList(ctx, req, reply, target.group);
    case 'user':
      return user(ctx, req, reply, target.group, target.user, who);
    case 'password':
      return password(ctx, req, reply, target.group, target.user, who);
    case 'keys':
      return keys(ctx, req, reply, target.group, who);
    case 'tokens':
      return tokenList(ctx, req, reply, target.group, who);
    case 'token':
      return token(ctx, req, reply, target.group, target.token, who);
    case 'clients':
      return clientList(ctx, req, reply, target.group);
    case 'description':
      return description(ctx, req, reply, target.group, target.client, who);
  }
}

/** Registers /galene-api/ on `app` (any server flavour and logger type). */
export async function registerAdminApi<Server extends RawServerBase, AppLogger extends FastifyBaseLogger>(
  app: FastifyInstance<Server, RawRequestDefaultExpression<Server>, RawReplyDefaultExpression<Server>, AppLogger>,
  deps: AdminApiDeps,
): Promise<void> {
  const ctx = adminContext(deps);
  const { log } = deps;

  await app.register(async (api) => {
    // Bodies are read raw and checked per endpoint (content type, size, schema).
    api.removeAllContentTypeParsers();
    api.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

    api.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 413) return sendError(reply, 413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
      if (status >= 500) {
        req.log.error({ err }, 'admin API: internal error');
        return sendError(reply, 500, 'internal server error; the server log has the details');
      }
      return sendError(reply, status, err.message);
    });

    api.route({
      method: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'],
      url: `${PREFIX}*`,
      logLevel: 'warn', // URLs may carry token names, which are secrets.
      handler: async (req, reply) => {
        try {
          return await dispatch(ctx, req, reply);
        } catch (err) {
          if (err instanceof HttpError) return sendError(reply, err.status, err.message, err.headers);
          if (err instanceof PreconditionFailedError) return sendError(reply, 412, err.message);
          if (err instanceof GroupNotFoundError) return sendError(reply, 404, err.message);
          if (err instanceof GroupStoreError) return sendError(reply, 400, err.message);
          if (err instanceof GroupFileError) return sendError(reply, 400, `the result would be an invalid group definition: ${err.message}`);
          log.error({ err, method: req.method }, 'admin API: internal error');
          return sendError(reply, 500, 'internal server error; the server log has the details');
        }
      },
    });
  });
}
