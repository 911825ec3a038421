// Invitations made from inside a group (Galène's `maketoken`, `edittoken`,
// `listtokens`): who may make, extend, revoke and list the group's stateful
// tokens, and what a new one may grant. The tokens themselves are kept by
// the server (auth/tokens.ts) behind the TokenKeeper seam; every answer goes
// back to the member as a `token` or `tokenlist` message, an error included,
// as Galène's client expects.
import type { Permission } from './client.ts';
import { CoreError, isCoreError } from './errors.ts';
import type { Group, Member } from './group.ts';

/** A stateful token as Galène shows it (its JSON fields). */
export interface TokenView {
  token: string;
  group: string;
  username?: string;
  permissions: string[];
  expires?: string;
  'not-before'?: string;
  issuedBy?: string;
  issuedAt?: string;
  includeSubgroups?: boolean;
}

/** The server's stateful tokens, as the core sees them. */
export interface TokenKeeper {
  create(t: { group: string; username?: string; permissions: Permission[]; expires: Date; notBefore?: Date; issuedBy?: string }): Promise<TokenView>;
  /** The token as stored now (changes made behind the server's back included). */
  get(token: string): Promise<TokenView | undefined>;
  put(t: TokenView): Promise<void>;
  /** The tokens of exactly this group. */
  list(group: string): Promise<TokenView[]>;
}

/** A time as a token template gives it: an RFC 3339 string, or milliseconds from now. */
export type TemplateTime = string | number;

/** What a member sends with `maketoken` or `edittoken` (Galène's token template). */
export interface TokenTemplate {
  token?: string | undefined;
  group?: string | undefined;
  username?: string | undefined;
  permissions?: Permission[] | undefined;
  expires?: TemplateTime | undefined;
  'not-before'?: TemplateTime | undefined;
}

export type TokenActionKind = 'maketoken' | 'edittoken' | 'listtokens';

/** How long an invitation lasts when the template does not say (Galène's client asks for a day). */
export const DEFAULT_INVITE_MS = 86400e3;

/**
 * Runs one token action for a member and sends the answer: the token (or
 * the list), or the error as Galène does, in a message of the same kind.
 */
export async function tokenAction(group: Group, from: Member, kind: TokenActionKind, template: TokenTemplate | undefined, keeper: TokenKeeper | undefined, now = Date.now()): Promise<void> {
  const replyKind = kind === 'listtokens' ? 'tokenlist' : 'token';
  let value: unknown;
  try {
    if (!keeper) throw new CoreError('not-supported', 'this server keeps no invitation tokens');
    if (kind === 'maketoken') value = await makeToken(group, from, template ?? {}, keeper, now);
    else if (kind === 'edittoken') value = await editToken(group, from, template ?? {}, keeper, now);
    else value = await listTokens(group, from, keeper);
  } catch (e) {
    if (!isCoreError(e)) throw e;
    from.client.deliver({ type: 'message', kind: replyKind, source: undefined, username: undefined, dest: from.id, privileged: true, error: e.code, value: e.message });
    return;
  }
  from.client.deliver({ type: 'message', kind: replyKind, source: undefined, username: undefined, dest: from.id, privileged: true, value });
}

/**
 * `maketoken`: needs `token`; the invitation is for this group only (not
 * its subgroups), may not name a user of the group file, and grants at most
 * the permissions its maker has.
 */
async function makeToken(group: Group, from: Member, t: TokenTemplate, keeper: TokenKeeper, now: number): Promise<TokenView> {
  require(from, 'token', 'create invitations');
  if (t.token !== undefined) throw new CoreError('bad-message', 'the server names new tokens: leave "token" out of the template');
  if (t.group !== undefined && t.group !== group.name) throw new CoreError('not-permitted', `you can only invite to the group you are in ("${group.name}"), not to "${t.group}"`);
  if (t.username !== undefined && t.username !== '' && Object.hasOwn(group.description.users, t.username)) {
    throw new CoreError('not-permitted', `the username "${t.username}" belongs to a registered user of group "${group.name}"; choose another one`);
  }
  const permissions = t.permissions ?? [];
  const extra = permissions.filter((p) => !from.has(p));
  if (extra.length > 0) throw new CoreError('not-permitted', `you cannot hand out permissions you do not have: ${extra.join(', ')}`);
  const expires = new Date(t.expires === undefined ? now + DEFAULT_INVITE_MS : timeOf(t.expires, 'expires', now));
  if (expires.getTime() <= now) throw new CoreError('bad-message', `"expires" (${expires.toISOString()}) is already past: an invitation must expire in the future`);
  const notBefore = t['not-before'] === undefined ? undefined : new Date(timeOf(t['not-before'], 'not-before', now));
  if (notBefore && notBefore.getTime() >= expires.getTime()) throw new CoreError('bad-message', '"not-before" must be earlier than "expires"');
  return keeper.create({
    group: group.name,
    ...(t.username !== undefined ? { username: t.username } : {}),
    permissions,
    expires,
    ...(notBefore ? { notBefore } : {}),
    ...(from.username ? { issuedBy: from.username } : {}),
  });
}

/**
 * `edittoken`: needs `op` and `token`; changes only the times of one of
 * this group's tokens. An `expires` in the past revokes the token (Galène's
 * `/revoke`); a later one extends it (`/reinvite`).
 */
async function editToken(group: Group, from: Member, t: TokenTemplate, keeper: TokenKeeper, now: number): Promise<TokenView> {
  require(from, 'op', 'edit invitations');
  require(from, 'token', 'edit invitations');
  if (t.token === undefined) throw new CoreError('bad-message', 'say which invitation to edit: the template needs "token"');
  const fixed = (['group', 'username', 'permissions'] as const).filter((k) => t[k] !== undefined);
  if (fixed.length > 0) throw new CoreError('bad-message', `this field cannot be edited: ${fixed.join(', ')} (only "expires" and "not-before" can)`);
  const old = await keeper.get(t.token);
  if (!old || old.group !== group.name) throw new CoreError('no-such-token', `there is no invitation "${t.token}" for group "${group.name}"`);
  const next: TokenView = { ...old, permissions: [...old.permissions] };
  if (t.expires !== undefined) next.expires = new Date(timeOf(t.expires, 'expires', now)).toISOString();
  if (t['not-before'] !== undefined) next['not-before'] = new Date(timeOf(t['not-before'], 'not-before', now)).toISOString();
  await keeper.put(next);
  return next;
}

/** `listtokens`: needs `op` and `token`; this group's tokens, soonest expiry first. */
async function listTokens(group: Group, from: Member, keeper: TokenKeeper): Promise<TokenView[]> {
  require(from, 'op', 'list invitations');
  require(from, 'token', 'list invitations');
  return keeper.list(group.name);
}

function timeOf(v: TemplateTime, field: string, now: number): number {
  const ms = typeof v === 'number' ? now + v : Date.parse(v);
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new CoreError('bad-message', `"${field}" is not a usable time`);
  return ms;
}

function require(member: Member, p: Permission, what: string): void {
  if (!member.has(p)) throw new CoreError('not-permitted', `you need the "${p}" permission to ${what}`);
}
