// The admin API on any node of a cluster: requests about the live members
// of a group (.clients, descriptions) are passed to the node that holds the
// group; .stats gathers every node's; .cluster lists the nodes and where
// each group lives; .drain drains the node it is sent to. A request passed
// on carries X-Atrium-Forwarded, so the node that gets it answers for
// itself instead of passing it on again.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry, RemoteNode } from '../core/registry.ts';
import type { Cluster } from './cluster.ts';

export const FORWARDED_HEADER = 'x-atrium-forwarded';

/** Request headers an admin request keeps when it is passed to another node. */
const PASSED_HEADERS = ['authorization', 'content-type', 'if-match', 'if-none-match', 'host', 'x-forwarded-for', 'accept'];
/** Response headers relayed back. */
const RELAYED_HEADERS = ['content-type', 'etag', 'location', 'www-authenticate', 'retry-after', 'allow'];

export interface AdminCluster {
  /** Whether this request was passed on by another node (answer it here). */
  forwarded(req: FastifyRequest): boolean;
  /** The node that holds `group` if it is live on another node. */
  ownerElsewhere(group: string): Promise<RemoteNode | undefined>;
  /** Passes the request to `node` and relays the answer. */
  forward(req: FastifyRequest, reply: FastifyReply, node: RemoteNode): Promise<FastifyReply>;
  /** The .stats of every other live node, concatenated. */
  otherStats(req: FastifyRequest): Promise<unknown[]>;
  /** The nodes, their load and their groups. */
  describe(): unknown;
  /** Starts draining this node. */
  drain(): void;
}

export function clusterAdmin(cluster: Cluster, registry: Registry, hooks: { drain: () => void }): AdminCluster {
  const forward = async (req: FastifyRequest, node: RemoteNode): Promise<Response> => {
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
    for (const h of PASSED_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const body = req.body instanceof Buffer && req.body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD' ? new Uint8Array(req.body) : undefined;
    return fetch(`${node.internalUrl}${req.url}`, { method: req.method, headers, ...(body ? { body } : {}), signal: AbortSignal.timeout(5000), redirect: 'manual' });
  };
  return {
    forwarded: (req) => req.headers[FORWARDED_HEADER] === '1',
    async ownerElsewhere(group) {
      const where = await registry.locate(group);
      return where.kind === 'elsewhere' ? where.node : undefined;
    },
    async forward(req, reply, node) {
      let res: Response;
      try {
        res = await forward(req, node);
      } catch (e) {
        return reply
          .code(502)
          .type('application/json')
          .send({ error: 'bad-gateway', message: `group lives on node "${node.id}", which did not answer (${(e as Error).message}); try again in a few seconds` });
      }
      reply.code(res.status);
      for (const h of RELAYED_HEADERS) {
        const v = res.headers.get(h);
        if (v !== null) reply.header(h, v);
      }
      return reply.send(Buffer.from(await res.arrayBuffer()));
    },
    async otherStats(req) {
      const others = cluster.liveNodes().filter((n) => n.id !== cluster.nodeId);
      const answers = await Promise.all(
        others.map(async (n) => {
          try {
            const res = await forward(req, n);
            return res.ok ? ((await res.json()) as unknown[]) : [];
          } catch {
            return [];
          }
        }),
      );
      return answers.flat();
    },
    describe() {
      return {
        node: cluster.nodeId,
        redis: cluster.redisState,
        nodes: cluster.liveNodes().map((n) => ({
          id: n.id,
          publicUrl: n.publicUrl,
          internalUrl: n.internalUrl,
          region: n.region,
          labels: n.labels,
          draining: n.draining,
          clients: n.clients,
          streams: n.streams,
          cpu: n.cpu,
          groups: n.groups,
        })),
      };
    },
    drain: hooks.drain,
  };
}
