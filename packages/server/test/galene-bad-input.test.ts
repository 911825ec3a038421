// Hostile input over the Galène protocol against a real server process: a
// table of malformed frames and abusive sequences, each with what the
// attacker must get back. After every row the rest of the group must have
// noticed nothing: a bystander member is still connected and saw no frame
// caused by the attack (but the attacker's own `user` add/delete, or what a
// row legitimately did), the chat history still holds its baseline and
// nothing injected, the bystander's data and permissions are unchanged, the
// server answers /healthz and logged no error.
//
// The table of outcomes is printed at the end (and kept in docs/bad-input.md).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type WebSocket from 'ws';
import { ERROR_CODES, LIMITS } from '@atrium/protocol/galene';
import { CLOSE, RATES } from '../src/dialects/galene/connection.ts';
import { type Frame, GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

// ---------------------------------------------------------------------------
// The server, the bystander and the baseline history.

const GROUP = 'bad';
const BASELINE = 'baseline: this message must survive every row';
const BYSTANDER_DATA = { role: 'witness', n: 1 };
const open = { password: { type: 'wildcard' }, permissions: 'present' };

let server: RunningServer;
let bystander: GaleneTestClient;
let bystanderPermissions: string[] = [];
let logMark = 0;
let attackers = 0;
/** Attackers whose public chat legitimately reached the history: id -> username. */
const chatty = new Map<string, string>();
const table: { name: string; as: string; got: string; bystander: string; ok: boolean }[] = [];
const started = performance.now();

before(async () => {
  server = await startServer({
    groups: {
      [GROUP]: { users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open },
      other: { 'wildcard-user': open },
      auto: { 'wildcard-user': open, 'auto-subgroups': true },
    },
  });
  bystander = await GaleneTestClient.connect(server.wsUrl);
  const joined = await bystander.join(GROUP, 'bystander', 'x', { data: BYSTANDER_DATA });
  assert.equal(joined.kind, 'join', JSON.stringify(joined));
  bystanderPermissions = joined.permissions;
  bystander.chat(BASELINE);
  await bystander.next((f) => f.type === 'chat' && f.value === BASELINE);
  logMark = server.output().length;
});

after(async () => {
  // A Markdown table, as kept in docs/bad-input.md.
  const cell = (s: string) => s.replaceAll('|', '\\|');
  const lines = [
    '| # | row | attacker | attacker got back | bystander saw |',
    '| ---: | --- | --- | --- | --- |',
    ...table.map((r, i) => `| ${i + 1} | ${cell(r.name)} | ${r.as} | ${cell(r.got)}${r.ok ? '' : ' **(row failed)**'} | ${cell(r.bystander)} |`),
  ];
  console.log(`bad-input table: ${table.length} rows, ${table.filter((r) => r.ok).length} passed, ${((performance.now() - started) / 1000).toFixed(1)} s\n${lines.join('\n')}`);
  bystander?.close();
  await server?.stop();
});

// ---------------------------------------------------------------------------
// Rows.

type As = 'raw' | 'handshaken' | 'member' | 'op';
/** A text frame of arbitrary bytes (not necessarily UTF-8). */
class BadText {
  constructor(readonly bytes: Buffer) {}
}
/** What the attacker sends: an object (as JSON), a raw text frame, a binary frame, or bad text. */
type Out = Record<string, unknown> | string | Buffer | BadText;

interface Ctx {
  attacker: GaleneTestClient;
  username: string;
  bystander: GaleneTestClient;
}

interface Result {
  /** Everything the attacker received during the row (pongs of our own pings left out). */
  got: Frame[];
  /** Error codes in order: `usermessage` errors as "code", failed joins as "fail:code". */
  errors: string[];
  close: { code: number; reason: string } | undefined;
  elapsedMs: number;
}

interface Row {
  name: string;
  /** Who attacks: an unhandshaken socket, a handshaken one, a group member, an operator. */
  as: As;
  send: Out[] | ((c: Ctx) => Out[]);
  /** The exact error codes expected back, in order. */
  errors?: string[];
  /** The server must close the socket with this code and a reason matching. */
  close?: { code: number; reason: RegExp };
  /** A flood: the server may close with 1008; the row's check says the rest. */
  flood?: boolean;
  /** Wait until this holds of what the attacker got (for asynchronous replies). */
  until?: (got: Frame[]) => boolean;
  /** Frames the bystander may see besides the attacker's user add/delete; checks them. */
  bystander?: (seen: Frame[], c: Ctx) => void;
  /** The row chats in public legitimately; `history` checks its entries. */
  chats?: boolean;
  history?: (entries: Frame[], r: Result, c: Ctx) => void;
  check?: (r: Result, c: Ctx) => void;
}

const E = (...codes: string[]) => codes;
const nest = (depth: number, inner = '') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
const nestObj = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
/** A chat frame of exactly `bytes` bytes. */
const chatFrameOf = (bytes: number) => {
  const head = '{"type":"chat","kind":"","value":"';
  return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
};
const chat = (extra: Record<string, unknown>) => ({ type: 'chat', kind: '', value: 'x', ...extra });
const join = (extra: Record<string, unknown>) => ({ type: 'join', kind: 'join', group: GROUP, username: 'mallory', password: 'x', ...extra });
const um = (extra: Record<string, unknown>) => ({ type: 'usermessage', kind: 'app', value: 'x', ...extra });
const ua = (kind: string, extra: Record<string, unknown> = {}) => ({ type: 'useraction', kind, ...extra });
const ga = (kind: string, extra: Record<string, unknown> = {}) => ({ type: 'groupaction', kind, ...extra });
const invite = { type: 'invite', version: ['1'], id: 'ft1', name: 'a.txt', size: 5 };
const times = (n: number, f: (i: number) => Out) => Array.from({ length: n }, (_, i) => f(i));
const joinedKind = (kind: string) => (got: Frame[]) => got.some((f) => f.type === 'joined' && f.kind === kind);

/** The bystander sees exactly `n` `user change` frames of the attacker, keeping its permissions. */
const sees = (n: number, type: 'user' | 'joined' | 'chat' | 'usermessage') => (seen: Frame[], c: Ctx) => {
  assert.equal(seen.length, n, `bystander should see ${n} ${type} frame(s): ${JSON.stringify(seen).slice(0, 400)}`);
  for (const f of seen) {
    assert.equal(f.type, type);
    if (type === 'user') {
      assert.equal(f.id, c.attacker.id);
      assert.equal(f.kind, 'change');
      assert.ok(!f.permissions.includes('op'), 'the attacker gained op');
    }
    if (type === 'chat' || type === 'usermessage') {
      assert.equal(f.source, c.attacker.id, 'the server must set the real source');
      assert.equal(f.username, c.username, 'the server must set the real username');
      assert.equal(f.privileged, false, 'the server must set privileged');
    }
    if (type === 'joined') {
      assert.equal(f.kind, 'change');
      assert.deepEqual(f.permissions, bystanderPermissions);
      assert.ok(!f.status?.locked, 'the group got locked');
    }
  }
};

/** Checks for floods: every error is rate-limited, a close is 1008, at most `limit` of `what` got through. */
function floodCheck(r: Result, counted: number, limit: number, what: string, allowed: string[]): void {
  assert.ok(r.errors.includes('rate-limited'), `a rate-limited error is expected, got ${r.errors.slice(0, 5).join(', ')}`);
  for (const e of r.errors) assert.ok(allowed.includes(e), `unexpected error ${e} in a flood`);
  assert.ok(r.errors.filter((e) => e === 'rate-limited').length <= 1 + Math.ceil(r.elapsedMs / 1000), 'at most one rate-limited error a second');
  if (r.close) assert.equal(r.close.code, CLOSE.policy, `a flood is closed with 1008, not ${r.close.code}`);
  assert.ok(counted >= 1, `some ${what} should get through`);
  assert.ok(counted <= limit, `${counted} ${what} got through, at most ${limit} allowed`);
}
const allowedBy = (burst: number, perSecond: number, ms: number) => burst + Math.ceil((ms / 1000) * perSecond);

const rows: Row[] = [
  // --- Malformed JSON -----------------------------------------------------
  { name: 'truncated JSON', as: 'member', send: ['{"type":"chat","kind":"","value":"trunc'], errors: E('bad-json') },
  { name: 'JSON with trailing garbage', as: 'member', send: ['{"type":"ping"} {"type":"ping"}'], errors: E('bad-json') },
  { name: 'empty text frame', as: 'member', send: [''], errors: E('bad-json') },
  { name: 'whitespace-only frame', as: 'member', send: [' \n\t '], errors: E('bad-json') },
  { name: 'byte-order mark before the JSON', as: 'member', send: ['\ufeff{"type":"ping"}'], errors: E('bad-json') },
  { name: 'single quotes (not JSON)', as: 'member', send: ["{'type':'ping'}"], errors: E('bad-json') },
  { name: 'JSON null', as: 'member', send: ['null'], errors: E('bad-message') },
  { name: 'JSON number', as: 'member', send: ['42'], errors: E('bad-message') },
  { name: 'JSON number out of double range', as: 'member', send: ['-1e400'], errors: E('bad-message') },
  { name: 'JSON string', as: 'member', send: ['"chat"'], errors: E('bad-message') },
  { name: 'JSON boolean', as: 'member', send: ['true'], errors: E('bad-message') },
  { name: 'JSON array of messages', as: 'member', send: ['[{"type":"chat","kind":"","value":"in an array"}]'], errors: E('bad-message') },
  { name: '10 000 nested arrays', as: 'member', send: [nest(10_000)], errors: E('bad-message') },
  { name: '10 000 nested objects in a usermessage value', as: 'member', send: [`{"type":"usermessage","kind":"app","value":${nestObj(10_000)}}`], errors: E('too-large') },
  {
    name: '10 000 nested arrays in join data (before joining)',
    as: 'handshaken',
    send: [`{"type":"join","kind":"join","group":"${GROUP}","username":"deep","password":"x","data":{"a":${nest(10_000)}}}`],
    errors: E('too-large'),
  },
  { name: '10 000 nested arrays in a chat field the schema ignores', as: 'member', send: [`{"type":"chat","kind":"","value":"deep","extra":${nest(10_000)}}`], errors: E('too-large') },
  { name: '100 000 nested arrays in a setdata value', as: 'member', send: [`{"type":"useraction","kind":"setdata","value":{"a":${nest(100_000)}}}`], errors: E('too-large') },
  { name: 'invalid UTF-8 in a text frame', as: 'member', send: [new BadText(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))], close: { code: 1007, reason: /^$/ } },

  // --- Binary frames --------------------------------------------------------
  { name: 'binary frame holding valid JSON', as: 'member', send: [Buffer.from('{"type":"chat","kind":"","value":"binary"}')], errors: E('bad-message') },
  { name: 'empty binary frame', as: 'member', send: [Buffer.alloc(0)], errors: E('bad-message') },
  { name: 'binary garbage', as: 'member', send: [randomBytes(64)], errors: E('bad-message') },

  // --- The type field -------------------------------------------------------
  { name: 'missing type', as: 'member', send: [{ kind: '', value: 'no type' }], errors: E('bad-message') },
  { name: 'unknown type', as: 'member', send: [{ type: 'hack' }], errors: E('unknown-type') },
  { name: 'type "__proto__"', as: 'member', send: ['{"type":"__proto__","value":"x"}'], errors: E('unknown-type') },
  { name: 'type "constructor"', as: 'member', send: [{ type: 'constructor' }], errors: E('unknown-type') },
  { name: 'type "toString"', as: 'member', send: [{ type: 'toString' }], errors: E('unknown-type') },
  { name: 'type in the wrong case ("CHAT")', as: 'member', send: [{ type: 'CHAT', kind: '', value: 'x' }], errors: E('unknown-type') },
  {
    name: 'type of 100 000 characters',
    as: 'member',
    send: [{ type: 't'.repeat(100_000) }],
    errors: E('unknown-type'),
    check: (r) => assert.ok(JSON.stringify(r.got).length < 2000, 'the error must not echo the whole type back'),
  },
  { name: 'numeric type', as: 'member', send: [{ type: 7 }], errors: E('bad-message') },
  { name: 'null type', as: 'member', send: [{ type: null }], errors: E('bad-message') },
  { name: 'object type', as: 'member', send: [{ type: { toString: 'chat' } }], errors: E('bad-message') },
  { name: 'array type', as: 'member', send: [{ type: ['chat'], value: 'x' }], errors: E('bad-message') },

  // --- handshake ------------------------------------------------------------
  { name: 'handshake: version as a string', as: 'raw', send: [{ type: 'handshake', version: '2' }], errors: E('bad-message') },
  // As Galène: a handshake without "2" gets a warning, and the server goes on.
  {
    name: 'handshake: empty version list',
    as: 'raw',
    send: [{ type: 'handshake', version: [] }],
    errors: E(),
    until: (got) => got.some((f) => f.kind === 'warning'),
    check: (r) => assert.ok(r.got.some((f) => f.type === 'usermessage' && f.kind === 'warning' && f.error === 'bad-version')),
  },
  { name: 'handshake: numeric versions', as: 'raw', send: [{ type: 'handshake', version: [2] }], errors: E('bad-message') },
  { name: 'handshake: numeric id', as: 'raw', send: [{ type: 'handshake', version: ['2'], id: 12 }], errors: E('bad-message') },
  { name: 'handshake: id over 256 characters', as: 'raw', send: [{ type: 'handshake', version: ['2'], id: 'i'.repeat(LIMITS.idChars + 1) }], errors: E('bad-message') },
  {
    name: 'handshake: bad protocol version',
    as: 'raw',
    send: [{ type: 'handshake', version: ['1'] }],
    errors: E(),
    until: (got) => got.some((f) => f.kind === 'warning'),
    check: (r) => {
      assert.ok(r.got.some((f) => f.type === 'handshake'));
      assert.match(r.got.find((f) => f.kind === 'warning')?.value, /version "2".*\["1"\].*continue/);
    },
  },
  { name: 'handshake: a second handshake', as: 'handshaken', send: [{ type: 'handshake', version: ['2'] }], errors: E('bad-message') },
  {
    name: "handshake: the bystander's client id",
    as: 'raw',
    send: (c) => [{ type: 'handshake', version: ['2'], id: c.bystander.id }],
    errors: E('bad-message'),
    close: { code: CLOSE.duplicateId, reason: /duplicate/ },
  },

  // --- Before handshake, before join -----------------------------------------
  { name: 'chat before the handshake', as: 'raw', send: [chat({ value: 'too early' })], errors: E('bad-message') },
  { name: 'join before the handshake', as: 'raw', send: [join({})], errors: E('bad-message') },
  { name: 'useraction before the handshake', as: 'raw', send: [ua('op', { dest: 'x' })], errors: E('bad-message') },
  { name: 'chat before joining', as: 'handshaken', send: [chat({ value: 'not joined' })], errors: E('not-joined') },
  { name: 'usermessage before joining', as: 'handshaken', send: (c) => [um({ dest: c.bystander.id })], errors: E('not-joined') },
  { name: 'useraction before joining', as: 'handshaken', send: (c) => [ua('kick', { dest: c.bystander.id })], errors: E('not-joined') },
  { name: 'groupaction before joining', as: 'handshaken', send: [ga('clearchat')], errors: E('not-joined') },

  // --- join: wrong types and out-of-range values --------------------------------
  { name: 'join: numeric group', as: 'handshaken', send: [join({ group: 42 })], errors: E('bad-message') },
  { name: 'join: missing group', as: 'handshaken', send: [join({ group: undefined })], errors: E('bad-message') },
  { name: 'join: empty group', as: 'handshaken', send: [join({ group: '' })], errors: E('bad-message') },
  { name: 'join: kind "enter"', as: 'handshaken', send: [join({ kind: 'enter' })], errors: E('bad-message') },
  { name: 'join: numeric username', as: 'handshaken', send: [join({ username: 7 })], errors: E('bad-message') },
  { name: 'join: password as an object', as: 'handshaken', send: [join({ password: { type: 'wildcard' } })], errors: E('bad-message') },
  { name: 'join: data as an array', as: 'handshaken', send: [join({ data: [1, 2] })], errors: E('bad-message') },
  { name: 'join: data as a string', as: 'handshaken', send: [join({ data: 'x' })], errors: E('bad-message') },
  { name: 'join: data over 16 KiB', as: 'handshaken', send: [join({ data: { a: 'd'.repeat(LIMITS.dataBytes) } })], errors: E('bad-message') },
  { name: 'join: username over 256 characters', as: 'handshaken', send: [join({ username: 'u'.repeat(LIMITS.usernameChars + 1) })], errors: E('bad-message') },
  { name: 'join: group name over 256 characters', as: 'handshaken', send: [join({ group: 'g'.repeat(LIMITS.groupNameChars + 1) })], errors: E('bad-message') },
  { name: 'join: password over 4 KiB', as: 'handshaken', send: [join({ password: 'p'.repeat(LIMITS.passwordChars + 1) })], errors: E('bad-message') },

  // --- chat: wrong types and out-of-range values ------------------------------
  { name: 'chat: numeric value', as: 'member', send: [chat({ value: 42 })], errors: E('bad-message') },
  { name: 'chat: missing value', as: 'member', send: [chat({ value: undefined })], errors: E('bad-message') },
  { name: 'chat: null value', as: 'member', send: [chat({ value: null })], errors: E('bad-message') },
  { name: 'chat: kind "shout"', as: 'member', send: [chat({ kind: 'shout' })], errors: E('bad-message') },
  { name: 'chat: numeric dest', as: 'member', send: [chat({ dest: 5 })], errors: E('bad-message') },
  { name: 'chat: privileged as a string', as: 'member', send: [chat({ privileged: 'yes' })], errors: E('bad-message') },
  { name: 'chat: time as an object', as: 'member', send: [chat({ time: { now: true } })], errors: E('bad-message') },
  { name: 'chat: noecho as a string', as: 'member', send: [chat({ noecho: 'yes' })], errors: E('bad-message') },
  { name: 'chat: value over 32 KiB', as: 'member', send: [chat({ value: 'c'.repeat(LIMITS.chatChars + 1) })], errors: E('bad-message') },
  { name: 'chat: caption without the caption permission', as: 'member', send: [chat({ kind: 'caption' })], errors: E('not-permitted') },

  // --- usermessage, useraction, groupaction, request: wrong types -------------
  { name: 'usermessage: numeric kind', as: 'member', send: [um({ kind: 3 })], errors: E('bad-message') },
  { name: 'usermessage: empty kind', as: 'member', send: [um({ kind: '' })], errors: E('bad-message') },
  { name: 'usermessage: kind over 64 characters', as: 'member', send: [um({ kind: 'k'.repeat(65) })], errors: E('bad-message') },
  { name: 'usermessage: numeric dest', as: 'member', send: [um({ dest: 1 })], errors: E('bad-message') },
  { name: 'useraction: kind "ban"', as: 'member', send: (c) => [ua('ban', { dest: c.bystander.id })], errors: E('bad-message') },
  { name: 'useraction: missing kind', as: 'member', send: (c) => [{ type: 'useraction', dest: c.bystander.id }], errors: E('bad-message') },
  { name: 'useraction: dest as an object', as: 'member', send: [ua('kick', { dest: { id: 'x' } })], errors: E('bad-message') },
  { name: 'groupaction: kind "destroy"', as: 'member', send: [ga('destroy')], errors: E('bad-message') },
  { name: 'groupaction: numeric kind', as: 'member', send: [{ type: 'groupaction', kind: 1 }], errors: E('bad-message') },
  { name: 'request: request as a string', as: 'member', send: [{ type: 'request', request: 'everything' }], errors: E('bad-message') },
  { name: 'request: unknown media', as: 'member', send: [{ type: 'request', request: { '': ['audio', 'smell'] } }], errors: E('bad-message') },
  { name: 'request: label over 64 characters', as: 'member', send: [{ type: 'request', request: { ['l'.repeat(65)]: ['audio'] } }], errors: E('bad-message') },

  // --- Media streams (not supported yet) ---------------------------------------
  { name: 'offer with an SDP that has no media', as: 'member', send: [{ type: 'offer', id: 's1', label: 'camera', sdp: 'v=0\r\n' }], errors: E('bad-message') },
  { name: 'offer without sdp', as: 'member', send: [{ type: 'offer', id: 's1' }], errors: E('bad-message') },
  { name: 'offer with sdp over 128 KiB', as: 'member', send: [{ type: 'offer', id: 's1', sdp: 's'.repeat(LIMITS.sdpChars + 1) }], errors: E('bad-message') },
  { name: 'answer for an unknown stream', as: 'member', send: [{ type: 'answer', id: 's1', sdp: 'v=0\r\n' }], errors: E('bad-message') },
  { name: 'ice for an unknown stream', as: 'member', send: [{ type: 'ice', id: 's1', candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' } }], errors: E('bad-message') },
  { name: 'renegotiate an unknown stream', as: 'member', send: [{ type: 'renegotiate', id: 's1' }], errors: E('bad-message') },
  { name: 'requestStream for an unknown stream', as: 'member', send: [{ type: 'requestStream', id: 's1', request: ['audio'] }], errors: E('bad-message') },
  { name: 'close of an unknown stream (ignored: it may have just ended)', as: 'member', send: [{ type: 'close', id: 's1' }], errors: E() },
  { name: 'abort (before joining)', as: 'handshaken', send: [{ type: 'abort', id: 's1' }], errors: E('not-joined') },

  // --- Oversized frames ------------------------------------------------------
  {
    name: 'frame of exactly 256 KiB',
    as: 'member',
    send: [chatFrameOf(LIMITS.frameBytes)],
    errors: E('bad-message'),
  },
  { name: 'frame of 256 KiB + 1 byte', as: 'member', send: [chatFrameOf(LIMITS.frameBytes + 1)], close: { code: 1009, reason: /over the 262144-byte limit/ } },

  // --- Spoofing --------------------------------------------------------------
  {
    name: 'chat with spoofed source, username, privileged, time',
    as: 'member',
    send: (c) => [chat({ source: c.bystander.id, username: 'bystander', privileged: true, time: '1999-01-01T00:00:00.000Z', value: 'spoofed chat' })],
    errors: E(),
    chats: true,
    until: (got) => got.some((f) => f.type === 'chat'),
    bystander: (seen, c) => {
      sees(1, 'chat')(seen, c);
      assert.ok(!seen[0]!.time.startsWith('1999'), 'the server must set the time');
    },
    history: (entries, _r, c) => {
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.username, c.username);
      assert.equal(entries[0]!.privileged, false);
    },
  },
  {
    name: 'private chat to the bystander, spoofed as the bystander',
    as: 'member',
    send: (c) => [chat({ dest: c.bystander.id, source: c.bystander.id, username: 'bystander', privileged: true, value: 'spoofed pm' })],
    errors: E(),
    bystander: (seen, c) => {
      sees(1, 'chat')(seen, c);
      assert.equal(seen[0]!.dest, c.bystander.id);
    },
  },
  {
    name: 'usermessage with spoofed source, username, privileged',
    as: 'member',
    send: (c) => [um({ dest: c.bystander.id, source: c.bystander.id, username: 'op', privileged: true, value: 'spoofed note' })],
    errors: E(),
    bystander: sees(1, 'usermessage'),
  },

  // --- Actions without permission ----------------------------------------------
  ...(['op', 'unop', 'present', 'unpresent', 'kick'] as const).map(
    (kind): Row => ({ name: `useraction ${kind} on the bystander without op`, as: 'member', send: (c) => [ua(kind, { dest: c.bystander.id, value: 'bye' })], errors: E('not-permitted') }),
  ),
  { name: 'useraction op on oneself without op', as: 'member', send: (c) => [ua('op', { dest: c.attacker.id })], errors: E('not-permitted') },
  { name: 'useraction kick of oneself without op', as: 'member', send: (c) => [ua('kick', { dest: c.attacker.id })], errors: E('not-permitted') },
  { name: "useraction setdata on the bystander's data", as: 'member', send: (c) => [ua('setdata', { dest: c.bystander.id, value: { role: 'pwned' } })], errors: E('not-permitted') },
  ...(['clearchat', 'lock', 'unlock', 'subgroups', 'setdata', 'record', 'unrecord'] as const).map(
    (kind): Row => ({ name: `groupaction ${kind} without permission`, as: 'member', send: [ga(kind, { value: kind === 'setdata' ? { pwned: true } : 'x' })], errors: E('not-permitted') }),
  ),
  { name: 'usermessage mute without op', as: 'member', send: (c) => [um({ kind: 'mute', dest: c.bystander.id })], errors: E('not-permitted') },

  // --- Unknown user ids --------------------------------------------------------
  { name: 'op: useraction op on an unknown id', as: 'op', send: [ua('op', { dest: 'no-such-id' })], errors: E('no-such-user') },
  { name: 'op: useraction kick of an unknown id', as: 'op', send: [ua('kick', { dest: 'no-such-id' })], errors: E('no-such-user') },
  { name: 'op: useraction kick of id "__proto__"', as: 'op', send: [ua('kick', { dest: '__proto__' })], errors: E('no-such-user') },
  { name: 'op: useraction present without dest', as: 'op', send: [ua('present')], errors: E('bad-message') },
  { name: 'chat to an unknown id', as: 'member', send: [chat({ dest: 'no-such-id' })], errors: E('no-such-user') },
  { name: 'usermessage to an unknown id', as: 'member', send: [um({ dest: 'no-such-id' })], errors: E('no-such-user') },
  { name: 'useraction setdata on an unknown id', as: 'member', send: [ua('setdata', { dest: 'no-such-id', value: { a: 1 } })], errors: E('not-permitted') },

  // --- setdata values --------------------------------------------------------
  { name: 'setdata: value as a string', as: 'member', send: [ua('setdata', { value: 'x' })], errors: E('bad-message') },
  { name: 'setdata: value as an array', as: 'member', send: [ua('setdata', { value: [1] })], errors: E('bad-message') },
  { name: 'setdata: null value', as: 'member', send: [ua('setdata', { value: null })], errors: E('bad-message') },
  { name: 'setdata: value over 16 KiB', as: 'member', send: [ua('setdata', { value: { a: 'd'.repeat(LIMITS.dataBytes + 1) } })], errors: E('too-large') },
  {
    name: 'setdata: two 10 KB values adding up over 16 KiB',
    as: 'member',
    send: [ua('setdata', { value: { a: 'd'.repeat(10_000) } }), ua('setdata', { value: { b: 'd'.repeat(10_000) } })],
    errors: E('too-large'),
    bystander: sees(1, 'user'),
  },

  // --- filetransfer -----------------------------------------------------------
  { name: 'filetransfer without dest', as: 'member', send: [um({ kind: 'filetransfer', value: invite })], errors: E('bad-message') },
  { name: 'filetransfer with a string value', as: 'member', send: (c) => [um({ kind: 'filetransfer', dest: c.bystander.id, value: 'gimme' })], errors: E('bad-message') },
  { name: 'filetransfer invite without size', as: 'member', send: (c) => [um({ kind: 'filetransfer', dest: c.bystander.id, value: { ...invite, size: undefined } })], errors: E('bad-message') },
  { name: 'filetransfer invite with a negative size', as: 'member', send: (c) => [um({ kind: 'filetransfer', dest: c.bystander.id, value: { ...invite, size: -1 } })], errors: E('bad-message') },
  { name: 'filetransfer of unknown type "steal"', as: 'member', send: (c) => [um({ kind: 'filetransfer', dest: c.bystander.id, value: { type: 'steal', id: 'x' } })], errors: E('bad-message') },
  { name: 'filetransfer to an unknown id', as: 'member', send: [um({ kind: 'filetransfer', dest: 'no-such-id', value: invite })], errors: E('no-such-user') },

  // --- Server-only usermessage kinds -----------------------------------------
  ...(['kicked', 'error', 'clearchat', 'warning', 'info'] as const).map(
    (kind): Row => ({ name: `usermessage of server-only kind "${kind}"`, as: 'member', send: (c) => [um({ kind, dest: c.bystander.id, value: 'fake' })], errors: E('not-permitted') }),
  ),
  { name: 'usermessage "kicked" broadcast to everyone', as: 'member', send: [um({ kind: 'kicked', value: 'fake' })], errors: E('not-permitted') },

  // --- Join sequences and group names -----------------------------------------
  { name: 'joining the same group twice', as: 'member', send: [join({})], errors: E('fail:already-joined') },
  { name: 'joining a second group', as: 'member', send: [join({ group: 'other' })], errors: E('fail:already-joined') },
  {
    name: 'two joins back to back',
    as: 'handshaken',
    send: [join({ username: 'twice' }), join({ group: 'other', username: 'twice' })],
    errors: E('fail:already-joined'),
    until: joinedKind('join'),
  },
  { name: 'leaving a group one is not in', as: 'member', send: [{ type: 'join', kind: 'leave', group: 'other' }], errors: E('not-joined') },
  { name: 'leaving without having joined', as: 'handshaken', send: [{ type: 'join', kind: 'leave', group: GROUP }], errors: E('not-joined') },
  {
    name: 'leaving twice',
    as: 'member',
    send: [
      { type: 'join', kind: 'leave', group: GROUP },
      { type: 'join', kind: 'leave', group: GROUP },
    ],
    errors: E('not-joined'),
    until: joinedKind('leave'),
  },
  { name: 'joining a non-existent group', as: 'handshaken', send: [join({ group: 'nowhere' })], errors: E('fail:no-such-group') },
  { name: 'group "../bad"', as: 'handshaken', send: [join({ group: `../${GROUP}` })], errors: E('fail:no-such-group') },
  { name: 'group "bad/.."', as: 'handshaken', send: [join({ group: `${GROUP}/..` })], errors: E('fail:no-such-group') },
  { name: 'group "auto/.." (auto-subgroups parent)', as: 'handshaken', send: [join({ group: 'auto/..' })], errors: E('fail:no-such-group') },
  { name: 'group "auto/../bad" (auto-subgroups parent)', as: 'handshaken', send: [join({ group: `auto/../${GROUP}` })], errors: E('fail:no-such-group') },
  { name: 'group "auto/.hidden" (auto-subgroups parent)', as: 'handshaken', send: [join({ group: 'auto/.hidden' })], errors: E('fail:no-such-group') },
  { name: 'group "auto//x" (auto-subgroups parent)', as: 'handshaken', send: [join({ group: 'auto//x' })], errors: E('fail:no-such-group') },
  { name: 'group "auto/" (auto-subgroups parent)', as: 'handshaken', send: [join({ group: 'auto/' })], errors: E('fail:no-such-group') },
  { name: 'group "__proto__"', as: 'handshaken', send: [join({ group: '__proto__' })], errors: E('fail:no-such-group') },
  { name: 'join with a garbage token and a password', as: 'handshaken', send: [join({ token: 'garbage.not.a-jwt', password: 'x' })], errors: E('fail:not-authorised') },
  { name: 'join as op with a wrong password', as: 'handshaken', send: [join({ username: 'op', password: 'guess' })], errors: E('fail:not-authorised') },
  { name: 'join without a username', as: 'handshaken', send: [join({ username: undefined })], errors: E('fail:need-username') },

  // --- Prototype pollution -----------------------------------------------------
  {
    name: 'join data with "__proto__" and "constructor" keys',
    as: 'handshaken',
    send: [`{"type":"join","kind":"join","group":"${GROUP}","username":"proto","password":"x","data":{"__proto__":{"op":true,"polluted":1},"constructor":{"prototype":{"polluted":1}}}}`],
    errors: E(),
    until: joinedKind('join'),
    check: (r) => {
      const j = r.got.find((f) => f.type === 'joined');
      assert.deepEqual(j?.permissions, bystanderPermissions, 'no permission gained through data');
    },
  },
  {
    name: 'setdata with "__proto__", then an op action on oneself',
    as: 'member',
    send: (c) => ['{"type":"useraction","kind":"setdata","value":{"__proto__":{"op":true,"polluted":1}}}', ua('op', { dest: c.attacker.id })],
    errors: E('not-permitted'),
    bystander: (seen, c) => {
      sees(1, 'user')(seen, c);
      assert.ok(!Object.hasOwn(seen[0]!.data, 'polluted'));
    },
  },
  {
    name: 'setdata with "constructor", "toString", "hasOwnProperty" keys, then more setdata',
    as: 'member',
    send: ['{"type":"useraction","kind":"setdata","value":{"constructor":{"prototype":{"polluted":1}},"toString":"x","hasOwnProperty":1}}', ua('setdata', { value: { after: 1 } })],
    errors: E(),
    bystander: sees(2, 'user'),
  },
  {
    name: 'usermessage value with a "__proto__" key',
    as: 'member',
    send: (c) => [`{"type":"usermessage","kind":"app","dest":"${c.bystander.id}","value":{"__proto__":{"polluted":1}}}`],
    errors: E(),
    bystander: sees(1, 'usermessage'),
  },
  {
    name: 'op: group setdata with "__proto__" and "constructor", then cleared',
    as: 'op',
    send: [
      '{"type":"groupaction","kind":"setdata","value":{"__proto__":{"locked":true},"constructor":{"prototype":{"locked":true}}}}',
      ga('setdata', { value: { constructor: null } }),
      '{"type":"groupaction","kind":"setdata","value":{"__proto__":null}}',
    ],
    errors: E(),
    // "__proto__" is an ordinary key: set, then cleared, like "constructor".
    bystander: sees(3, 'joined'),
  },

  // --- Floods -----------------------------------------------------------------
  {
    name: '1000 chat messages at once',
    as: 'member',
    send: times(1000, (i) => chat({ value: `flood ${i}` })),
    flood: true,
    chats: true,
    check: (r) => {
      const echoed = r.got.filter((f) => f.type === 'chat').length;
      floodCheck(r, echoed, allowedBy(RATES.chatBurst, RATES.chatPerSecond, r.elapsedMs), 'chats', ['rate-limited']);
    },
    bystander: (seen, c) => {
      for (const f of seen) assert.ok(f.type === 'chat' && f.source === c.attacker.id, `unexpected ${JSON.stringify(f)}`);
      assert.ok(seen.length >= 1);
    },
    history: (entries, r) => {
      const limit = allowedBy(RATES.chatBurst, RATES.chatPerSecond, r.elapsedMs);
      assert.ok(entries.length <= limit, `${entries.length} flood messages in the history, at most ${limit} allowed`);
      assert.equal(entries.length, r.got.filter((f) => f.type === 'chat').length, 'the history holds what was broadcast');
    },
  },
  {
    name: '1000 pings at once',
    as: 'member',
    send: times(1000, () => ({ type: 'ping' })),
    flood: true,
    check: (r) => {
      const pongs = r.got.filter((f) => f.type === 'pong').length;
      floodCheck(r, pongs, allowedBy(RATES.messageBurst, RATES.messagesPerSecond, r.elapsedMs), 'pongs', ['rate-limited']);
    },
  },
  {
    name: '1000 malformed frames at once',
    as: 'member',
    send: times(1000, () => 'nope'),
    flood: true,
    check: (r) => {
      const handled = r.errors.filter((e) => e === 'bad-json').length;
      floodCheck(r, handled, allowedBy(RATES.messageBurst, RATES.messagesPerSecond, r.elapsedMs), 'bad-json replies', ['rate-limited', 'bad-json']);
    },
  },
  {
    name: '300 joins and leaves at once',
    as: 'handshaken',
    send: times(600, (i) => (i % 2 === 0 ? join({ username: 'yoyo' }) : { type: 'join', kind: 'leave', group: GROUP })),
    flood: true,
    check: (r) => {
      const joins = r.got.filter((f) => f.type === 'joined' && f.kind === 'join').length;
      floodCheck(r, joins, 300, 'joins', ['rate-limited', 'not-joined', 'fail:already-joined']);
    },
  },
];

// ---------------------------------------------------------------------------
// The runner.

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Ping and wait for one more pong: everything sent before was handled. */
async function sync(c: GaleneTestClient): Promise<void> {
  if (c.isClosed) return;
  const pongs = c.all('pong').length;
  c.send({ type: 'ping' });
  await until(() => c.all('pong').length > pongs || c.isClosed, 'pong');
}

function errorOf(f: Frame): string | undefined {
  if (f.type === 'usermessage' && f.kind === 'error') return String(f.error);
  if (f.type === 'joined' && f.kind === 'fail') return `fail:${f.error}`;
  return undefined;
}

function tokenOf(f: Frame): string {
  const e = errorOf(f);
  if (e !== undefined) return e.startsWith('fail:') ? `joined fail ${e.slice(5)}` : `error ${e}`;
  if (f.type === 'joined' || f.type === 'user' || f.type === 'usermessage') return `${f.type} ${f.kind}`;
  return f.type;
}

/** "a, b ×3, c" for short sequences, counts in order of appearance for long ones. */
function summarize(tokens: string[]): string {
  const runs: [string, number][] = [];
  for (const t of tokens) {
    const last = runs[runs.length - 1];
    if (last && last[0] === t) last[1]++;
    else runs.push([t, 1]);
  }
  let parts: [string, number][] = runs;
  if (runs.length > 6) {
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    parts = [...counts];
  }
  return parts.map(([t, n]) => (n > 1 ? `${t} ×${n}` : t)).join(', ');
}

async function makeAttacker(as: As): Promise<Ctx> {
  const n = ++attackers;
  const attacker = await GaleneTestClient.connect(server.wsUrl, { handshake: as !== 'raw' });
  let username = `mallory-${n}`;
  if (as === 'member' || as === 'op') {
    if (as === 'op') username = 'op';
    const joined = await attacker.join(GROUP, username, as === 'op' ? 'oppw' : 'x');
    assert.equal(joined.kind, 'join', `the attacker could not join: ${JSON.stringify(joined)}`);
    await sync(attacker);
  }
  return { attacker, username, bystander };
}

function send(c: GaleneTestClient, out: Out): void {
  if (out instanceof BadText) {
    // The test client sends only well-formed text; reach its socket for bytes that are not UTF-8.
    (c as unknown as { ws: WebSocket }).ws.send(out.bytes, { binary: false });
  } else if (typeof out === 'string' || Buffer.isBuffer(out)) {
    c.sendRaw(out);
  } else {
    c.send(out);
  }
}

/** A fresh member joins: the history, the roster and the group are as they should be. */
async function checkGroup(row: Row, r: Result, ctx: Ctx): Promise<void> {
  const checker = await GaleneTestClient.connect(server.wsUrl);
  try {
    const joined = await checker.join(GROUP, 'checker', 'x');
    assert.equal(joined.kind, 'join', `a fresh member could not join: ${JSON.stringify(joined)}`);
    await sync(checker);
    assert.deepEqual(joined.data ?? {}, {}, 'the group data changed');
    assert.ok(!joined.status?.locked, 'the group is locked');

    const history = checker.all('chathistory');
    assert.equal(history.filter((h) => h.value === BASELINE && h.source === bystander.id).length, 1, 'the baseline message is gone from the history');
    for (const h of history) {
      if (h.source === bystander.id) {
        assert.equal(h.value, BASELINE, 'history entry in the name of the bystander');
        continue;
      }
      const name = chatty.get(h.source);
      assert.ok(name !== undefined || (row.chats && h.source === ctx.attacker.id), `injected history entry ${JSON.stringify(h)}`);
      assert.equal(h.username, name ?? ctx.username, 'history entry with a spoofed username');
      assert.equal(h.privileged, false, 'history entry with spoofed privilege');
    }
    const mine = history.filter((h) => h.source === ctx.attacker.id);
    if (row.history) row.history(mine, r, ctx);
    else assert.equal(mine.length, 0, 'the attacker left entries in the history');

    const users = checker.all('user', 'add');
    assert.deepEqual(users.map((u) => u.username).sort(), ['bystander', 'checker'], `the roster is ${JSON.stringify(users.map((u) => u.username))}`);
    const b = users.find((u) => u.id === bystander.id);
    assert.deepEqual(b?.data, BYSTANDER_DATA, "the bystander's data changed");
    assert.deepEqual(b?.permissions, bystanderPermissions, "the bystander's permissions changed");
    assert.deepEqual(checker.violations, []);
  } finally {
    checker.close();
    await checker.closed;
    await until(() => bystander.received.some((f) => f.type === 'user' && f.kind === 'delete' && f.id === checker.id), 'the checker to leave');
  }
}

for (const [i, row] of rows.entries()) {
  test(`${String(i + 1).padStart(3, '0')} ${row.name}`, async (t) => {
    const seenFrom = bystander.received.length;
    const ctx = await makeAttacker(row.as);
    const { attacker } = ctx;
    const from = attacker.received.length;
    const pongsBefore = attacker.all('pong').length;
    const expected = row.errors ?? [];
    const t0 = performance.now();
    let closedByServer: { code: number; reason: string } | undefined;
    const entry = { name: row.name, as: row.as, got: '(no answer)', bystander: '', ok: false };
    table.push(entry);
    try {
      for (const out of typeof row.send === 'function' ? row.send(ctx) : row.send) send(attacker, out);
      const got = () => attacker.received.slice(from);
      if (row.close) {
        await until(() => attacker.isClosed, 'the server to close the socket').catch(() => undefined);
      } else if (row.flood) {
        // Closed for flooding, or else every frame handled once the bucket refills.
        const ac = new AbortController();
        await Promise.race([
          attacker.closed,
          sleep(1100, undefined, { signal: ac.signal }).then(
            () => sync(attacker),
            () => undefined,
          ),
        ]);
        ac.abort();
      } else {
        await until(() => attacker.isClosed || (got().flatMap((f) => errorOf(f) ?? []).length >= expected.length && (row.until?.(got()) ?? true)), `${expected.length} error(s)`).catch(
          () => undefined,
        );
        await sync(attacker);
      }
      const elapsedMs = performance.now() - t0;
      if (attacker.isClosed) closedByServer = await attacker.closed;
      // The pongs of our own sync pings are not part of the answer; a flood's are.
      const own = row.flood ? 0 : attacker.all('pong').length - pongsBefore;
      let skip = own;
      const gotFrames = [...got()]
        .reverse()
        .filter((f) => !(f.type === 'pong' && skip-- > 0))
        .reverse();
      const answer = gotFrames.filter((f) => f.type !== 'user' && f.type !== 'chathistory');
      const r: Result = { got: gotFrames, errors: gotFrames.flatMap((f) => errorOf(f) ?? []), close: closedByServer, elapsedMs };
      const closeText = closedByServer ? `close ${closedByServer.code} "${closedByServer.reason}"` : '';
      entry.got = [summarize(answer.map(tokenOf)), closeText].filter(Boolean).join(', ') || 'nothing';

      if (!attacker.isClosed) attacker.close();
      await attacker.closed;
      // The attacker's membership at the bystander: adds and deletes alternate and end balanced.
      const balance = () => {
        let inGroup = 0;
        for (const f of bystander.received.slice(seenFrom)) {
          if (f.type !== 'user' || f.id !== attacker.id) continue;
          if (f.kind === 'add') inGroup++;
          if (f.kind === 'delete') inGroup--;
          assert.ok(inGroup === 0 || inGroup === 1, 'the bystander saw the attacker added twice or deleted while absent');
        }
        return inGroup;
      };
      await until(() => balance() === 0, 'the bystander to see the attacker leave');
      await sync(bystander);
      const seen = bystander.received.slice(seenFrom).filter((f) => f.type !== 'pong' && !(f.type === 'user' && f.id === attacker.id && (f.kind === 'add' || f.kind === 'delete')));
      const userFrames = bystander.received.slice(seenFrom).filter((f) => f.type === 'user' && f.id === attacker.id && f.kind !== 'change').length;
      entry.bystander = [userFrames ? `user add/delete ×${userFrames}` : '', summarize(seen.map(tokenOf))].filter(Boolean).join(', ') || 'nothing';
      t.diagnostic(`${row.name} -> ${entry.got} | bystander: ${entry.bystander}`);

      // What the attacker got back.
      for (const f of gotFrames) {
        const e = errorOf(f);
        if (e === undefined) continue;
        assert.ok((ERROR_CODES as readonly string[]).includes(e.replace(/^fail:/, '')), `error code ${e} is not in ERROR_CODES`);
        assert.ok(typeof f.value === 'string' && f.value.length > 0 && f.value.length <= 1024, `error ${e} needs a short sentence in value: ${String(f.value).slice(0, 100)}`);
      }
      if (row.errors) assert.deepEqual(r.errors, row.errors, `errors: got ${JSON.stringify(r.errors)}`);
      if (row.close) {
        assert.ok(closedByServer, 'the server should have closed the socket');
        assert.equal(closedByServer.code, row.close.code, `close code ${closedByServer.code} "${closedByServer.reason}"`);
        assert.match(closedByServer.reason, row.close.reason);
      } else if (!row.flood) {
        assert.equal(closedByServer, undefined, `the server closed the socket: ${closeText}`);
      }
      row.check?.(r, ctx);
      assert.deepEqual(attacker.violations, [], 'frames to the attacker that break the protocol');

      // The bystander noticed nothing.
      assert.equal(bystander.isClosed, false, 'the bystander was disconnected');
      if (row.bystander) row.bystander(seen, ctx);
      else assert.deepEqual(seen.map(tokenOf), [], 'the bystander received frames caused by the attack');
      assert.deepEqual(bystander.violations, []);
      await checkGroup(row, r, ctx);

      // The server is alive and logged no error.
      assert.equal(server.process.exitCode, null, `the server exited:\n${server.output().slice(logMark)}`);
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as { ok: boolean }).ok, true);
      const log = server.output().slice(logMark);
      logMark += log.length;
      for (const line of log.split('\n').filter(Boolean)) {
        assert.ok(/^\{.*"level":(10|20|30|40),/.test(line), `the server logged an error or a non-JSON line:\n${log.slice(0, 2000)}`);
      }
      entry.ok = true;
    } finally {
      if (!attacker.isClosed) attacker.close();
      if (row.chats) chatty.set(attacker.id, ctx.username);
    }
  });
}
