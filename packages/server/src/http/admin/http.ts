// The admin API's HTTP plumbing: errors that become plain-text responses,
// body readers that check content type and size, JSON and empty responses,
// ETag preconditions.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { describeIssue, formatPath } from '../../groups/description.ts';
import { type Preconditions, etagMatches } from '../../groups/store.ts';

export const PREFIX = '/galene-api/';
export const REALM = '/galene-api/';
/** Galène reads at most this much of a plain-text password. */
export const MAX_PASSWORD_BYTES = 4096;
export const MAX_BODY_BYTES = 1024 * 1024;

export const jsonObject = z.record(z.string(), z.unknown());

/** An error that becomes an HTTP response with a plain-text explanation. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

export function bodyBytes(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

export function readJson(req: FastifyRequest, accept = 'application/json'): unknown {
  const type = mediaType(req);
  if (type !== accept) {
    throw new HttpError(415, `unsupported content type ${type === '' ? '(none)' : `"${type}"`}: this endpoint accepts ${accept}`, { Accept: accept });
  }
  const bytes = bodyBytes(req);
  if (bytes.length === 0) throw new HttpError(400, `the request body is empty; send a JSON document (${accept})`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function readText(req: FastifyRequest): string {
  const type = mediaType(req);
  if (type !== 'text/plain') {
    throw new HttpError(415, `unsupported content type ${type === '' ? '(none)' : `"${type}"`}: POST a password as text/plain (PUT takes a JSON password definition)`, {
      Accept: 'text/plain',
    });
  }
  const bytes = bodyBytes(req);
  if (bytes.length > MAX_PASSWORD_BYTES) throw new HttpError(413, `the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  return bytes.toString('utf8');
}

/** Validates a body with zod; the 400 message names the field. */
export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw new HttpError(400, `invalid ${what}`);
  const d = describeIssue(issue);
  const field = d.path.length > 0 ? ` field "${formatPath(d.path)}":` : '';
  throw new HttpError(400, `invalid ${what}:${field} ${d.message}`);
}

export function sendJson(reply: FastifyReply, status: number, value: unknown, etag?: string): FastifyReply {
  reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-cache');
  if (etag !== undefined) reply.header('etag', etag);
  return reply.send(JSON.stringify(value) + '\n');
}

export function sendEmpty(reply: FastifyReply, status: number, etag?: string): FastifyReply {
  if (etag !== undefined) reply.header('etag', etag);
  return reply.code(status).send();
}

export function sendError(reply: FastifyReply, status: number, message: string, headers: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply
    .code(status)
    .header('content-type', 'text/plain; charset=utf-8')
    .send(message + '\n');
}

export function preconditionsOf(req: FastifyRequest): Preconditions {
  const h = (name: 'if-match' | 'if-none-match'): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  return { ifMatch: h('if-match'), ifNoneMatch: h('if-none-match') };
}

/** GET/HEAD conditional handling: 304 when If-None-Match matches, 412 when If-Match does not. */
export function conditionalGet(req: FastifyRequest, reply: FastifyReply, etag: string, what: string): boolean {
  const pre = preconditionsOf(req);
  if (pre.ifMatch !== undefined && !etagMatches(etag, pre.ifMatch, false)) {
    sendError(reply, 412, `${what} has changed: its ETag is not ${pre.ifMatch.trim()}`);
    return true;
  }
  if (pre.ifNoneMatch !== undefined && etagMatches(etag, pre.ifNoneMatch, true)) {
    reply.header('etag', etag).code(304).send();
    return true;
  }
  return false;
}

export function methodNotAllowed(method: string, what: string, allowed: string[]): HttpError {
  return new HttpError(405, `method ${method} is not allowed on ${what}; allowed: ${allowed.join(', ')}`, { Allow: allowed.join(', ') });
}

export function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

export function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
