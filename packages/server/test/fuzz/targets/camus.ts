// Fuzz target: Camus rooms at /room/<id>/ws. A case connects (the server
// joins it to the room at once) and sends one to six frames built from the
// Camus client schemas and mutated, then a ping to ground control. A frame
// that fails its schema, a ping, get-room-info and get-ice-servers are owed
// an answer (a refusal is a text from ground control with an error code); bye to ground control ends with a close. The bystander in the
// room keeps its connection and hears the witness.
import fc from 'fast-check';
import WebSocket from 'ws';
import { SERVER_ADDRESS, clientMessageSchemas, parseClientMessage } from '@atrium/protocol/camus';
import { type Host, REPLY_MS, type Target, loopbackAddress, until } from '../support/harness.ts';
import { type Wire, decodedWire, encodeWire, isBadText, wireOf } from '../support/mutate.ts';
import { arbitraryOf } from '../support/zod-arbitrary.ts';

const ROOM = 'fuzz-room';
const CLOSE_CODES = new Set([1000, 1001, 1007, 1008, 1009, 4001, 4003, 4004]);

export interface CamusCase {
  room: string;
  frames: Wire[];
}

interface Peer {
  ws: WebSocket;
  id: string;
  got: { type: string; data?: unknown; sender?: string; receiver?: string }[];
  closed: boolean;
}

export interface CamusEnv {
  base: string;
  bystander: Peer;
  witness: Peer;
  connections: number;
}

const TYPES = Object.keys(clientMessageSchemas);
/** Filled in at setup: the witness's id, so relayed frames reach someone. */
let witnessId = 'unknown';

function aim(v: unknown, n: number): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = { ...(v as Record<string, unknown>) };
  if ('receiver' in o) o.receiver = [SERVER_ADDRESS, 'room', o.receiver, witnessId][n % 4];
  return o;
}

const valid = fc.oneof(...Object.values(clientMessageSchemas).map((s) => fc.tuple(arbitraryOf(s), fc.nat()).map(([v, n]) => aim(v, n))));

/** A connection to a room; `answerPings` for the long-lived ones, as Camus's client does. */
async function peer(url: string, localAddress?: string, answerPings = false): Promise<Peer> {
  const ws = new WebSocket(url, localAddress ? { localAddress } : {});
  const p: Peer = { ws, id: '', got: [], closed: false };
  ws.on('message', (d) => {
    try {
      const f = JSON.parse(d.toString());
      if (answerPings && f.type === 'ping' && f.sender === SERVER_ADDRESS) ws.send(JSON.stringify({ type: 'pong', receiver: SERVER_ADDRESS, data: f.data }));
      p.got.push(f);
    } catch {
      p.got.push({ type: '(not JSON)', data: d.toString().slice(0, 200) });
    }
  });
  ws.on('close', () => (p.closed = true));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return p;
}

function owed(w: Wire): 'answer' | 'close' | undefined {
  const d = decodedWire(w);
  if (!d.ok) return 'answer';
  const p = parseClientMessage(d.value);
  if (!p.ok) return 'answer';
  const m = p.message;
  if (m.receiver !== SERVER_ADDRESS) return undefined;
  if (m.type === 'bye') return 'close';
  return m.type === 'ping' || m.type === 'get-room-info' || m.type === 'get-ice-servers' ? 'answer' : undefined;
}

const ANSWERS = new Set(['error', 'pong', 'room-info', 'ice-servers']);

/** A refusal comes as a `text` from ground control with an error code (Camus's client has no `error` handler). */
function isRefusal(f: { type: string; data?: unknown; sender?: string }): boolean {
  return f.type === 'text' && f.sender === SERVER_ADDRESS && typeof (f.data as { error?: unknown } | undefined)?.error === 'string';
}

function isAnswer(f: { type: string; data?: unknown; sender?: string }): boolean {
  return ANSWERS.has(f.type) || isRefusal(f);
}

export const camusTarget: Target<CamusCase, CamusEnv> = {
  name: 'camus',
  host: { groups: { locked: { users: {} } } },
  arbitrary: fc.record({
    room: fc.oneof({ arbitrary: fc.constant(ROOM), weight: 8 }, { arbitrary: fc.constantFrom('locked', 'other-room', 'a%20b', '%F0%9F%98%80'), weight: 1 }),
    frames: fc.array(wireOf(valid, TYPES), { minLength: 1, maxLength: 6 }),
  }),

  async setup(host: Host | undefined) {
    const base = host!.url.replace(/^http/, 'ws');
    const url = `${base}/room/${ROOM}/ws`;
    const bystander = await peer(url, undefined, true);
    const witness = await peer(url, undefined, true);
    for (const p of [bystander, witness]) {
      if (!(await until(() => p.got.some((f) => f.type === 'greeting'), REPLY_MS))) throw new Error('no greeting');
      p.id = p.got.find((f) => f.type === 'greeting')!.receiver as string;
    }
    witnessId = witness.id;
    return { base, bystander, witness, connections: 0 };
  },

  async run(env, c) {
    const p = await peer(`${env.base}/room/${c.room}/ws`, loopbackAddress(env.connections++));
    let code: number | undefined;
    let reason = '';
    p.ws.on('close', (cc, r) => {
      code = cc;
      reason = r.toString();
    });
    try {
      const count = () => p.got.filter(isAnswer).length;
      let expected = 0;
      let closes = false;
      for (const w of c.frames) {
        if (p.closed) break;
        const { data, binary } = encodeWire(w);
        p.ws.send(data, { binary });
        const o = owed(w);
        if (o === 'answer') expected++;
        if (o === 'close') closes = true;
      }
      if (!p.closed) p.ws.send(JSON.stringify({ type: 'ping', receiver: SERVER_ADDRESS, data: 1 }));
      expected++;
      await until(() => (count() >= expected && !closes) || p.closed, REPLY_MS);
      const notJson = p.got.find((f) => f.type === '(not JSON)');
      if (notJson) throw new Error(`the server sent a frame that is not JSON: ${String(notJson.data)}`);
      if (p.closed) {
        await until(() => code !== undefined, 1000);
        if (code === 1006 && c.frames.some(isBadText)) return;
        if (code === undefined || !CLOSE_CODES.has(code)) throw new Error(`closed with code ${code} ("${reason}")`);
        return;
      }
      if (closes) throw new Error('"bye" to ground control did not end the connection');
      if (count() < expected) throw new Error(`${expected} frames were owed an answer, ${count()} came: ${JSON.stringify(p.got.slice(-4)).slice(0, 600)}`);
      const internal = p.got.find((f) => (f.type === 'error' && /failed to handle/.test(String(f.data))) || (isRefusal(f) && (f.data as { error: string }).error === 'internal'));
      if (internal) throw new Error(`an internal error: ${JSON.stringify(internal)}`);
    } finally {
      p.ws.terminate();
    }
  },

  async check(env) {
    if (env.bystander.closed) throw new Error('the bystander was disconnected');
    if (env.witness.closed) {
      env.witness = await peer(`${env.base}/room/${ROOM}/ws`, undefined, true);
      await until(() => env.witness.got.some((f) => f.type === 'greeting'), REPLY_MS);
      env.witness.id = env.witness.got.find((f) => f.type === 'greeting')!.receiver as string;
      witnessId = env.witness.id;
    }
    // The bystander says something now and then, or the server drops it as silent after 75 s.
    env.bystander.ws.send(JSON.stringify({ type: 'ping', receiver: 'ground control', data: 1 }));
    const mark = `witness ${Date.now()} ${Math.random()}`;
    env.witness.ws.send(JSON.stringify({ type: 'text', receiver: 'room', data: { text: mark } }));
    const heard = await until(() => env.bystander.got.some((f) => f.type === 'text' && (f.data as { text?: string }).text === mark), REPLY_MS);
    if (!heard) throw new Error('the bystander did not hear the witness');
    const posing = env.bystander.got.find((f) => (f.type === 'text' || f.type === 'offer') && f.sender === env.bystander.id);
    if (posing) throw new Error(`a frame posed as the bystander: ${JSON.stringify(posing)}`);
    env.bystander.got.length = 0;
    env.witness.got.length = 0;
  },

  async teardown(env) {
    for (const p of [env.bystander, env.witness]) p.ws.close();
    await until(() => env.bystander.closed && env.witness.closed, 5000);
  },
};
