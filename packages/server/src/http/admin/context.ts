// What every admin API module shares: the server parts it works on
// (AdminApiDeps), who is asking (Principal), and the helpers the resource
// handlers have in common (AdminContext).
import type { FastifyRequest } from 'fastify';
import type { LoginThrottle } from '../../auth/throttle.ts';
import type { StatefulToken } from '../../auth/tokens.ts';
import type { ServerConfig } from '../../config/server-config.ts';
import type { Description } from '../../core/client.ts';
import { GroupFileError } from '../../groups/description.ts';
import { GroupNotFoundError, type GroupStore, type RawGroup } from '../../groups/store.ts';
import type { Logger } from '../../log.ts';
import type { PlaceOptions } from '../place.ts';
import { HttpError } from './http.ts';

/** What the admin API needs from the token store. */
export interface TokenStoreLike {
  get(token: string): StatefulToken | undefined;
  list(group?: string): StatefulToken[];
  put(t: StatefulToken): Promise<void>;
  delete(token: string): Promise<boolean>;
  /** Re-reads tokens changed behind the server's back (the file edited, `atrium token`). */
  refresh?(): Promise<void>;
}

/** The live members of groups, for the description endpoints. */
export interface MemberDirectory {
  /** The members of a live group (empty when nobody is in it). */
  list(group: string): { id: string; username?: string | undefined; description: Description }[];
  /** One member's description; undefined when there is no such member. */
  get(group: string, id: string): { description: Description } | undefined;
  /** Sets one member's description and tells its peers; false when there is no such member. */
  describe(group: string, id: string, description: Description): boolean;
}

export interface AdminApiDeps {
  groups: GroupStore;
  config: () => ServerConfig;
  tokens: TokenStoreLike;
  stats: () => unknown | Promise<unknown>;
  log: Logger;
  /** Live members; without it the .clients endpoints answer 404. */
  members?: MemberDirectory | undefined;
  /** Failed logins (Basic auth, bearer tokens), throttled per user and address; none when undefined. */
  throttle?: LoginThrottle | undefined;
  /** The address a request came from (behind a proxy, the client's); the socket's peer when undefined. */
  address?: ((req: FastifyRequest) => string | undefined) | undefined;
  /**
   * How the server is reached, for the group URL a bearer JWT's audience must
   * name; by default the request's scheme and Host, or config.json's proxyURL.
   */
  place?: (() => PlaceOptions) | undefined;
}

export interface Principal {
  /** Who is acting, for logs and `issuedBy`. */
  name: string;
  /**
   * False for a user acting on their own password with their own
   * credentials: they may set a password, never a definition.
   */
  admin: boolean;
}

/** The admin API's parts and shared helpers, handed to every handler. */
export interface AdminContext {
  deps: AdminApiDeps;
  groups: GroupStore;
  tokens: TokenStoreLike;
  log: Logger;
  /** The group's definition as stored; 404 when there is none, 500 when the file on disk is broken. */
  existing(name: string): Promise<RawGroup>;
  /** 403 unless data/config.json allows changes through the API. */
  requireWritable(): void;
}

export function adminContext(deps: AdminApiDeps): AdminContext {
  return {
    deps,
    groups: deps.groups,
    tokens: deps.tokens,
    log: deps.log,
    async existing(name: string): Promise<RawGroup> {
      let cur: RawGroup | undefined;
      try {
        cur = await deps.groups.readRaw(name);
      } catch (err) {
        if (err instanceof GroupFileError) {
          throw new HttpError(500, `the definition of group "${name}" on disk is invalid (${err.message}); fix the file, or replace it with PUT`);
        }
        throw err;
      }
      if (cur === undefined) throw new GroupNotFoundError(name);
      return cur;
    },
    requireWritable(): void {
      if (!deps.config().writableGroups) {
        throw new HttpError(403, `group definitions are read-only: set "writableGroups": true in ${deps.config().file} to allow changes through the API`);
      }
    },
  };
}
