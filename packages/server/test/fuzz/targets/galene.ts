// Fuzz target: the Galène protocol at /ws. A case opens a connection in one
// of four states (fresh, handshaken, member, operator), sends one to six
// frames built from the client message schemas and mutated, then a ping.
// Every frame owed a reply (a frame that fails its schema, a ping, a
// handshake, a join) must get one, or the server must close with a reason;
// the bystander in the group keeps its connection, hears the witness and
// never sees a frame posing as itself.
import fc from 'fast-check';
import WebSocket from 'ws';
import { clientMessageSchemas, parseClientMessage } from '@atrium/protocol/galene';
import { GaleneTestClient } from '../../support/galene-client.ts';
import { type Host, REPLY_MS, type Target, loopbackAddress, until } from '../support/harness.ts';
import { type Wire, decodedWire, encodeWire, isBadText, wireOf } from '../support/mutate.ts';
import { arbitraryOf } from '../support/zod-arbitrary.ts';

export const GROUP = 'fuzz';
const BYSTANDER_ID = 'bystander-7f3a9c1e52d04b68';
const WITNESS_ID = 'witness-0c5e8b2d';
/** Known only to the harness, so fuzzed joins do not lock it out. */
const OP = { username: 'fuzz-operator', password: 'op-secret-4b1d' };
/** Close codes a server may end a fuzzed connection with (each with a reason). */
const CLOSE_CODES = new Set([1000, 1001, 1007, 1008, 1009, 4001, 4002, 4003, 4004]);

type Start = 'fresh' | 'handshaken' | 'member' | 'op';
export interface GaleneCase {
  start: Start;
  frames: Wire[];
}

const TYPES = Object.keys(clientMessageSchemas);
const GROUPS = [GROUP, 'other', 'auto/sub', 'auto', 'nope', `${GROUP}/x`];

/** Points some fields at things that exist, so the deep paths are reached. */
function aim(v: unknown, n: number): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = { ...(v as Record<string, unknown>) };
  if ('group' in o && n % 3 !== 0) o.group = GROUPS[n % GROUPS.length];
  if ('dest' in o && n % 4 === 1) o.dest = WITNESS_ID;
  if (o.type === 'join' && n % 5 === 2) {
    o.username = OP.username;
    o.password = n % 2 ? OP.password : 'wrong';
  }
  if (o.type === 'handshake' && n % 2 === 0) o.version = ['2'];
  return o;
}

const valid = fc.oneof(...Object.values(clientMessageSchemas).map((s) => fc.tuple(arbitraryOf(s), fc.nat()).map(([v, n]) => aim(v, n))));

export interface GaleneEnv {
  url: string;
  bystander: GaleneTestClient;
  witness: GaleneTestClient;
  connections: number;
}

async function member(url: string, id: string, username: string): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(url, { id, answerPings: true, timeoutMs: REPLY_MS });
  const j = await c.join(GROUP, username, username === OP.username ? OP.password : 'x', {}, REPLY_MS);
  if (j.kind !== 'join') throw new Error(`${username} could not join: ${JSON.stringify(j)}`);
  return c;
}

/** What the server owes for one frame: true when it must answer it (or close). */
function owed(w: Wire): boolean {
  const d = decodedWire(w);
  if (!d.ok) return true;
  const p = parseClientMessage(d.value);
  if (!p.ok) return true;
  const t = p.message.type;
  return t === 'ping' || t === 'handshake' || (t === 'join' && p.message.kind === 'join');
}

function isAnswer(f: { type: string; kind?: string }): boolean {
  return (f.type === 'usermessage' && f.kind === 'error') || f.type === 'pong' || f.type === 'handshake' || (f.type === 'joined' && f.kind !== 'change');
}

export const galeneTarget: Target<GaleneCase, GaleneEnv> = {
  name: 'galene',
  host: {
    groups: {
      [GROUP]: { users: { [OP.username]: { password: OP.password, permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      other: { users: { bob: { password: 'bobpw', permissions: 'message' } } },
      auto: { 'auto-subgroups': true, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' } },
    },
  },
  arbitrary: fc.record({
    start: fc.constantFrom<Start>('fresh', 'handshaken', 'member', 'member', 'op'),
    frames: fc.array(wireOf(valid, TYPES), { minLength: 1, maxLength: 6 }),
  }),

  async setup(host: Host | undefined) {
    const url = `${host!.url.replace(/^http/, 'ws')}/ws`;
    const bystander = await member(url, BYSTANDER_ID, 'bystander');
    const witness = await member(url, WITNESS_ID, OP.username);
    return { url, bystander, witness, connections: 0 };
  },

  async run(env, c) {
    const ws = new WebSocket(env.url, { localAddress: loopbackAddress(env.connections++) });
    const got: { type: string; kind?: string }[] = [];
    let notJson: string | undefined;
    let closed: { code: number; reason: string } | undefined;
    ws.on('message', (d) => {
      try {
        got.push(JSON.parse(d.toString()));
      } catch {
        notJson ??= d.toString().slice(0, 200);
      }
    });
    ws.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    try {
      const send = (m: unknown) => ws.send(JSON.stringify(m));
      if (c.start !== 'fresh') {
        send({ type: 'handshake', version: ['2'], id: `fuzz-${env.connections}-${Math.random().toString(36).slice(2)}` });
        if (!(await until(() => got.some((f) => f.type === 'handshake') || closed !== undefined, REPLY_MS))) throw new Error('no handshake reply');
      }
      if (c.start === 'member' || c.start === 'op') {
        send({ type: 'join', kind: 'join', group: GROUP, username: c.start === 'op' ? OP.username : 'fuzzer', password: c.start === 'op' ? OP.password : 'x' });
        if (!(await until(() => got.some((f) => f.type === 'joined') || closed !== undefined, REPLY_MS))) throw new Error('no joined reply to the starting join');
      }
      const before = got.filter(isAnswer).length;
      let expected = 0;
      for (const w of c.frames) {
        if (closed) break;
        const { data, binary } = encodeWire(w);
        ws.send(data, { binary });
        if (owed(w)) expected++;
      }
      if (!closed) send({ type: 'ping' });
      expected++;
      const answered = () => got.filter(isAnswer).length - before >= expected;
      await until(() => answered() || closed !== undefined, REPLY_MS);
      if (notJson !== undefined) throw new Error(`the server sent a frame that is not JSON: ${notJson}`);
      if (closed !== undefined) {
        if (closed.code === 1006 && c.frames.some(isBadText)) return;
        if (!CLOSE_CODES.has(closed.code)) throw new Error(`closed with code ${closed.code} ("${closed.reason}"), not one a server gives with a reason`);
        if (closed.code !== 1007 && closed.reason === '') throw new Error(`closed with code ${closed.code} and no reason`);
        return;
      }
      if (!answered()) throw new Error(`${expected} frames were owed a reply, ${got.filter(isAnswer).length - before} came: ${JSON.stringify(got.slice(-4)).slice(0, 600)}`);
      const internal = got.find((f) => (f as { error?: string }).error === 'internal');
      if (internal) throw new Error(`an internal error: ${JSON.stringify(internal)}`);
    } finally {
      ws.terminate();
    }
  },

  async check(env) {
    // The witness may have been kicked or demoted by a fuzzed operator: it comes back.
    // Or silenced (shutup takes "message"), or demoted (unop): a fresh connection as the operator has both again.
    const lastJoined = env.witness.received.filter((f) => f.type === 'joined').at(-1) as { permissions?: string[] } | undefined;
    const silenced = lastJoined !== undefined && !(lastJoined.permissions?.includes('message') && lastJoined.permissions.includes('op'));
    if (silenced) env.witness.close();
    if (env.witness.isClosed || silenced) env.witness = await member(env.url, `${WITNESS_ID}-${Date.now()}`, OP.username);
    env.witness.send({ type: 'groupaction', kind: 'unlock', source: env.witness.id });
    // Both say something now and then, or the server drops them as silent after 75 s.
    env.bystander.send({ type: 'ping' });
    const mark = `witness ${Date.now()} ${Math.random()}`;
    env.witness.chat(mark);
    if (env.bystander.isClosed) throw new Error(`the bystander was disconnected: ${JSON.stringify(await env.bystander.closed)}`);
    await env.bystander.next((f) => f.type === 'chat' && f.value === mark, REPLY_MS, 'the witness chat');
    if (env.bystander.violations.length > 0) throw new Error(`the bystander got frames that break the protocol: ${env.bystander.violations.slice(0, 3).join('; ')}`);
    const posing = env.bystander.received.find((f) => (f.type === 'chat' || f.type === 'usermessage') && f.source === BYSTANDER_ID);
    if (posing) throw new Error(`a frame posed as the bystander: ${JSON.stringify(posing)}`);
    // Keep memory of what it saw bounded over long runs.
    env.bystander.received.splice(0, env.bystander.received.length);
    (env.bystander as unknown as { cursor: number }).cursor = 0;
    env.witness.received.splice(0, env.witness.received.length);
    (env.witness as unknown as { cursor: number }).cursor = 0;
  },

  async teardown(env) {
    env.bystander.close();
    env.witness.close();
    await Promise.all([env.bystander.closed, env.witness.closed]);
  },
};
