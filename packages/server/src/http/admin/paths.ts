// The admin API's URL space (galene-api.md): what a path under /galene-api/v0/
// names, parsed the way Galène does (the first "/." starts a special entry).
import { HttpError, PREFIX } from './http.ts';

export type UserRef = { kind: 'named'; name: string } | { kind: 'wildcard' };

export type Target =
  | { kind: 'stats' }
  | { kind: 'groups' }
  | { kind: 'group'; group: string }
  | { kind: 'users'; group: string }
  | { kind: 'user'; group: string; user: UserRef }
  | { kind: 'password'; group: string; user: UserRef }
  | { kind: 'keys'; group: string }
  | { kind: 'tokens'; group: string }
  | { kind: 'token'; group: string; token: string }
  | { kind: 'clients'; group: string }
  | { kind: 'description'; group: string; client: string };

export function notFound(what: string): HttpError {
  return new HttpError(404, `${what} not found; see galene-api.md for the endpoints under /galene-api/v0/`);
}

/** Splits the path after /galene-api/ the way Galène does: the first "/." starts a special entry. */
export function parseTarget(pathname: string): Target {
  let p: string;
  try {
    p = decodeURIComponent(pathname.slice(PREFIX.length));
  } catch {
    throw new HttpError(400, 'the URL contains invalid percent-encoding');
  }
  if (!p.startsWith('v0/')) throw notFound(`API version "${p.split('/')[0] ?? ''}"; this server speaks v0:`);
  const rest = p.slice('v0/'.length);
  if (rest === '.stats') return { kind: 'stats' };
  if (!rest.startsWith('.groups/')) throw notFound(`"/galene-api/${p}"`);
  const g = rest.slice('.groups/'.length);
  if (g === '') return { kind: 'groups' };

  // As Galène: the first "/." starts the special entry; `.groups/.tokens/` is the root group's ('').
  const slashed = `/${g}`;
  const split = slashed.indexOf('/.');
  if (split < 0) {
    return { kind: 'group', group: g.endsWith('/') ? g.slice(0, -1) : g };
  }
  const group = slashed.slice(1, Math.max(split, 1));
  const special = slashed.slice(split + 1);
  const slash = special.indexOf('/');
  const kind = slash < 0 ? special : special.slice(0, slash);
  const sub = slash < 0 ? undefined : special.slice(slash + 1);

  switch (kind) {
    case '.users':
      if (sub === undefined) throw notFound(`"${special}" (the user list is ".users/")`);
      if (sub === '') return { kind: 'users', group };
      if (sub.endsWith('/.password')) return { kind: 'password', group, user: { kind: 'named', name: sub.slice(0, -'/.password'.length) } };
      if (sub.includes('/.')) throw notFound(`"${special}"`);
      return { kind: 'user', group, user: { kind: 'named', name: sub } };
    case '.wildcard-user':
    case '.empty-user': {
      const user: UserRef = kind === '.wildcard-user' ? { kind: 'wildcard' } : { kind: 'named', name: '' };
      if (sub === undefined) return { kind: 'user', group, user };
      if (sub === '.password') return { kind: 'password', group, user };
      throw notFound(`"${special}"`);
    }
    case '.keys':
      if (sub !== undefined) throw notFound(`"${special}"`);
      return { kind: 'keys', group };
    case '.tokens':
      if (sub === undefined) throw notFound(`"${special}" (the token list is ".tokens/")`);
      if (sub === '') return { kind: 'tokens', group };
      if (sub.includes('/')) throw notFound(`"${special}"`);
      return { kind: 'token', group, token: sub };
    case '.clients': {
      if (sub === undefined) throw notFound(`"${special}" (the client list is ".clients/")`);
      if (sub === '') return { kind: 'clients', group };
      const client = sub.endsWith('/.description') ? sub.slice(0, -'/.description'.length) : '';
      if (client === '' || client.includes('/')) throw notFound(`"${special}" (a client's description is ".clients/<id>/.description")`);
      return { kind: 'description', group, client };
    }
    default:
      throw notFound(`"${special}"`);
  }
}

export function groupOf(t: Target): string | undefined {
  return t.kind === 'stats' || t.kind === 'groups' ? undefined : t.group;
}

export function describeUser(u: UserRef, group: string): string {
  if (u.kind === 'wildcard') return `the wildcard user of group "${group}"`;
  if (u.name === '') return `the empty user of group "${group}"`;
  return `user "${u.name}" of group "${group}"`;
}
