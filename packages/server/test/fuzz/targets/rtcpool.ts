// Fuzz targets: RTCPool's ssp v2 on /pool/ws (JSON {type, data} frames) and
// on socket.io (raw engine.io/socket.io packets on /socket.io/, so socket.io's
// own parser is fuzzed too). A case connects, optionally joins the fuzz
// pool, and sends one to six events built from the client event schemas and
// mutated. An event that fails its schema and every rtc:join are owed an
// answer (rtc:joined or rtc:error). The bystander endpoint in the pool keeps
// its connection and gets the witness's signalling.
import fc from 'fast-check';
import WebSocket from 'ws';
import { clientEventSchemas, parseClientEvent, parseClientFrame } from '@atrium/protocol/rtcpool';
import { type Host, REPLY_MS, type Target, loopbackAddress, until } from '../support/harness.ts';
import { type Wire, decodedWire, encodeWire, isBadText, mutated, wireOf } from '../support/mutate.ts';
import { arbitraryOf, hostileString } from '../support/zod-arbitrary.ts';

const POOL = 'fuzz-pool';
const TYPES = Object.keys(clientEventSchemas);
const CLOSE_CODES = new Set([1000, 1001, 1005, 1007, 1008, 1009, 4001, 4004]);
/** socket.io refuses these names from clients itself. */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

let witnessId = 'unknown';

function aim(type: string, data: unknown, n: number): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return data;
  const o = { ...(data as Record<string, unknown>) };
  if (type === 'rtc:join' && n % 3 !== 0) o.pool = [POOL, 'locked', 'x'][n % 3];
  if ('to' in o && n % 2) o.to = witnessId;
  if ('for' in o && n % 2) o.for = witnessId;
  return o;
}

/** A well-formed event: [type, data]. */
const validEvent = fc.oneof(...Object.entries(clientEventSchemas).map(([type, s]) => fc.tuple(arbitraryOf(s), fc.nat()).map(([d, n]) => ({ type, data: aim(type, d, n) }))));

export interface PoolCase {
  join: boolean;
  /** For socket.io: the handshake's auth (token, username). */
  auth?: Record<string, unknown> | undefined;
  frames: Wire[];
}

interface Endpoint {
  ws: WebSocket;
  id: string;
  events: { type: string; data: Record<string, unknown> }[];
  raw: string[];
  closed: { code: number; reason: string } | undefined;
}

interface Dialect {
  url(base: string): string;
  /** Opens the transport (for socket.io: the namespace, with auth). */
  open(e: Endpoint, auth?: Record<string, unknown>): Promise<void>;
  encode(type: string, data: unknown): string;
  decode(text: string): { type: string; data: Record<string, unknown> } | undefined;
  /** Whether a frame is owed an answer; undefined when it decodes to no event at all. */
  owed(w: Wire): boolean;
}

const wsDialect: Dialect = {
  url: (base) => `${base}/pool/ws`,
  async open() {},
  encode: (type, data) => JSON.stringify({ type, data }),
  decode(text) {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  },
  owed(w) {
    const d = decodedWire(w);
    if (!d.ok) return true;
    const p = parseClientFrame(d.value);
    return !p.ok || p.event.type === 'rtc:join';
  },
};

const ioDialect: Dialect = {
  url: (base) => `${base}/socket.io/?EIO=4&transport=websocket`,
  async open(e, auth) {
    if (!(await until(() => e.raw.some((r) => r.startsWith('0')), REPLY_MS))) throw new Error('no engine.io open packet');
    e.ws.send(auth === undefined ? '40' : `40${JSON.stringify(auth)}`);
    if (!(await until(() => e.raw.some((r) => r.startsWith('40') || r.startsWith('44')) || e.closed !== undefined, REPLY_MS))) throw new Error('no socket.io connect reply');
  },
  encode: (type, data) => `42${JSON.stringify([type, data])}`,
  decode(text) {
    if (!text.startsWith('42')) return undefined;
    try {
      const [type, data] = JSON.parse(text.slice(2)) as [string, Record<string, unknown>];
      return { type, data };
    } catch {
      return undefined;
    }
  },
  owed(w) {
    // Only a well-formed event packet reaches the server's handler; socket.io drops or closes on the rest.
    const text = 'text' in w ? w.text : 'json' in w ? undefined : undefined;
    if (text === undefined || !text.startsWith('42')) return false;
    let arr: unknown;
    try {
      arr = JSON.parse(text.slice(2));
    } catch {
      return false;
    }
    if (!Array.isArray(arr) || typeof arr[0] !== 'string' || RESERVED.has(arr[0])) return false;
    const p = parseClientEvent(arr[0], arr[1]);
    return !p.ok || p.event.type === 'rtc:join';
  },
};

/** socket.io frames: event packets of generated and mutated events, and damaged packets. */
const ioFrame: fc.Arbitrary<Wire> = fc.oneof(
  { arbitrary: validEvent.map((e) => ({ text: `42${JSON.stringify([e.type, e.data])}` })), weight: 5 },
  {
    arbitrary: mutated(
      validEvent.map((e) => e.data),
      TYPES,
    ).chain((d) => fc.constantFrom(...TYPES, 'rtc:fuzz', '', 'disconnect').map((t) => ({ text: `42${JSON.stringify([t, d])}` }))),
    weight: 4,
  },
  {
    arbitrary: fc
      .oneof(
        fc.constantFrom('4', '41', '42', '42[]', '42{}', '42[1]', '43[]', '451-["x",{"_placeholder":true,"num":0}]', '2', '3', '6', '1', '42/nsp,["x"]', '40', '4[]'),
        fc.tuple(fc.constantFrom('42', '43', '2', '4', ''), hostileString).map(([a, b]) => a + b),
      )
      .map((text) => ({ text })),
    weight: 2,
  },
);

export interface PoolEnv {
  base: string;
  dialect: Dialect;
  bystander: Endpoint;
  witness: Endpoint;
  connections: number;
}

async function endpoint(d: Dialect, base: string, localAddress?: string, auth?: Record<string, unknown>): Promise<Endpoint> {
  const ws = new WebSocket(d.url(base), localAddress ? { localAddress } : {});
  const e: Endpoint = { ws, id: '', events: [], raw: [], closed: undefined };
  ws.on('message', (m) => {
    const text = m.toString();
    if (e.raw.length < 1000) e.raw.push(text);
    if (d === ioDialect && text === '2') ws.send('3');
    const ev = d.decode(text);
    if (ev) e.events.push(ev);
  });
  ws.on('close', (code, reason) => (e.closed = { code, reason: reason.toString() }));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await d.open(e, auth);
  return e;
}

async function joined(d: Dialect, base: string): Promise<Endpoint> {
  const e = await endpoint(d, base);
  e.ws.send(d.encode('rtc:join', { pool: POOL }));
  if (!(await until(() => e.events.some((x) => x.type === 'rtc:joined'), REPLY_MS))) throw new Error(`could not join the pool: ${e.raw.slice(-3).join(' ')}`);
  e.id = String(e.events.find((x) => x.type === 'rtc:joined')!.data.client_id);
  return e;
}

function target(name: string, d: Dialect, frames: fc.Arbitrary<Wire>): Target<PoolCase, PoolEnv> {
  return {
    name,
    host: { groups: { locked: { users: {} } } },
    arbitrary: fc.record(
      {
        join: fc.boolean(),
        auth: fc.option(fc.dictionary(fc.constantFrom('token', 'username', 'x'), fc.oneof(hostileString, fc.jsonValue({ maxDepth: 1 })), { maxKeys: 2 }), { nil: undefined }),
        frames: fc.array(frames, { minLength: 1, maxLength: 6 }),
      },
      { requiredKeys: ['join', 'frames'] },
    ),

    async setup(host: Host | undefined) {
      const base = host!.url.replace(/^http/, 'ws');
      const bystander = await joined(d, base);
      const witness = await joined(d, base);
      witnessId = witness.id;
      return { base, dialect: d, bystander, witness, connections: 0 };
    },

    async run(env, c) {
      const e = await endpoint(d, env.base, loopbackAddress(env.connections++), d === ioDialect ? c.auth : undefined);
      try {
        const answers = () => e.events.filter((x) => x.type === 'rtc:joined' || x.type === 'rtc:error').length;
        let expected = 0;
        if (c.join && !e.closed) {
          e.ws.send(d.encode('rtc:join', { pool: POOL }));
          expected++;
        }
        // After a packet that is not an event (a disconnect, a parse error) socket.io's state is its own: count no further.
        let counting = true;
        for (const w of c.frames) {
          if (e.closed) break;
          const { data, binary } = encodeWire(w);
          e.ws.send(data, { binary });
          if (counting && d.owed(w)) expected++;
          if (d === ioDialect && !('text' in w && w.text.startsWith('42['))) counting = false;
        }
        if (!counting) expected = 0;
        await until(() => answers() >= expected || e.closed !== undefined, REPLY_MS);
        if (e.closed !== undefined) {
          const { code, reason } = e.closed;
          if (code === 1006 && c.frames.some(isBadText)) return;
          // socket.io ends a connection whose packets it cannot parse without a close reason.
          if (d === ioDialect && (code === 1005 || code === 1000 || code === 1006)) return;
          if (!CLOSE_CODES.has(code)) throw new Error(`closed with code ${code} ("${reason}")`);
          return;
        }
        if (answers() < expected) throw new Error(`${expected} events were owed an answer, ${answers()} came: ${e.raw.slice(-4).join(' ').slice(0, 600)}`);
        const internal = e.events.find((x) => x.type === 'rtc:error' && x.data.reason === 'internal');
        if (internal) throw new Error(`an internal error: ${JSON.stringify(internal)}`);
      } finally {
        e.ws.terminate();
      }
    },

    async check(env) {
      if (env.bystander.closed) throw new Error(`the bystander was disconnected: ${JSON.stringify(env.bystander.closed)}`);
      if (env.witness.closed) {
        env.witness = await joined(d, env.base);
        witnessId = env.witness.id;
      }
      const sdp = `v=0 witness ${Math.random()}`;
      env.witness.ws.send(d.encode('rtc:sdp', { to: env.bystander.id, description: { type: 'offer', sdp } }));
      const heard = await until(() => env.bystander.events.some((x) => x.type === 'rtc:sdp' && (x.data.description as { sdp?: string })?.sdp === sdp), REPLY_MS);
      if (!heard) throw new Error(`the bystander did not get the witness's rtc:sdp: ${env.bystander.raw.slice(-3).join(' ')}`);
      const posing = env.bystander.events.find((x) => (x.type === 'rtc:sdp' && x.data.peer === env.bystander.id) || (x.type === 'rtc:candidate' && x.data.from === env.bystander.id));
      if (posing) throw new Error(`an event posed as the bystander: ${JSON.stringify(posing)}`);
      env.bystander.events.length = 0;
      env.bystander.raw.length = 0;
      env.witness.events.length = 0;
      env.witness.raw.length = 0;
    },

    async teardown(env) {
      for (const e of [env.bystander, env.witness]) e.ws.close();
      await until(() => env.bystander.closed !== undefined && env.witness.closed !== undefined, 5000);
    },
  };
}

export const rtcpoolWsTarget = target(
  'rtcpool-ws',
  wsDialect,
  wireOf(
    validEvent.map((e) => ({ type: e.type, data: e.data })),
    TYPES,
  ),
);
export const socketIoTarget = target('socketio', ioDialect, ioFrame);
