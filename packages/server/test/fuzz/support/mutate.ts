// Mutations of well-formed messages: the fuzzers start from what a schema
// describes (zod-arbitrary.ts) and break it the ways real clients and
// attackers do: a field dropped, retyped or swapped for a hostile value, an
// unknown field, the wrong type name, deep nesting, a number where a string
// goes, or the JSON text itself truncated, spliced or not UTF-8 at all.
import fc, { type Arbitrary } from 'fast-check';
import { hostileString } from './zod-arbitrary.ts';

/** One thing sent on a connection, as JSON-safe data (so a failing case can be saved and replayed). */
export type Wire =
  /** A JSON value, sent as a text frame. */
  | { json: unknown }
  /** A text frame as is (need not be JSON). */
  | { text: string }
  /** A frame of raw bytes, base64 (binary, or a text frame that is not UTF-8 when `asText`). */
  | { bytes: string; asText?: boolean };

const hostileValue: Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.constantFrom(null, true, false, 0, -1, -0, 1e308, -1e308, 2 ** 53 + 1, 0.5, [], {}, [[]], { type: 'x' }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** A value nested `n` levels deep (past the 64-level limit sometimes). */
function nested(n: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = i % 2 ? { a: v } : [v];
  return v;
}

type Mutation = (v: Record<string, unknown>, pick: { key: string; value: unknown; n: number; otherType: string }) => unknown;

const MUTATIONS: Mutation[] = [
  // drop a field
  (v, p) => {
    const o = { ...v };
    delete o[Object.keys(o)[p.n % Math.max(1, Object.keys(o).length)] ?? ''];
    return o;
  },
  // a field gets a hostile value
  (v, p) => {
    const keys = Object.keys(v);
    return { ...v, [keys[p.n % Math.max(1, keys.length)] ?? 'type']: p.value };
  },
  // an unknown field
  (v, p) => ({ ...v, [p.key]: p.value }),
  // another message's type name, or none we know
  (v, p) => ({ ...v, type: p.otherType }),
  // deep nesting in a field
  (v, p) => ({ ...v, [Object.keys(v)[p.n % Math.max(1, Object.keys(v).length)] ?? 'value']: nested(40 + (p.n % 40)) }),
  // not an object at all
  (_v, p) => p.value,
  // wrapped in an array
  (v) => [v],
  // a nested object's field broken in turn
  (v, p) => {
    const out: Record<string, unknown> = { ...v };
    for (const [k, inner] of Object.entries(v)) {
      if (typeof inner === 'object' && inner !== null && !Array.isArray(inner)) {
        const ik = Object.keys(inner);
        out[k] = { ...inner, [ik[p.n % Math.max(1, ik.length)] ?? p.key]: p.value };
        return out;
      }
    }
    return { ...v, [p.key]: p.value };
  },
];

/** A mutation of a well-formed value (one to three steps). */
export function mutated(valid: Arbitrary<unknown>, typeNames: readonly string[]): Arbitrary<unknown> {
  const pick = fc.record({
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'type', 'kind', 'id', 'data')),
    value: hostileValue,
    n: fc.nat(1000),
    otherType: fc.oneof(fc.constantFrom(...typeNames), fc.string({ maxLength: 20 }), hostileString),
  });
  return fc.tuple(valid, fc.array(fc.tuple(fc.nat(MUTATIONS.length - 1), pick), { minLength: 1, maxLength: 3 })).map(([v, steps]) => {
    let out: unknown = v;
    for (const [m, p] of steps) {
      const obj = typeof out === 'object' && out !== null && !Array.isArray(out) ? (out as Record<string, unknown>) : { value: out };
      out = MUTATIONS[m]!(obj, p);
    }
    return out;
  });
}

/** Text-level damage to a JSON frame: truncated, spliced, duplicated keys, bytes that are not UTF-8. */
export function damagedText(valid: Arbitrary<unknown>): Arbitrary<Wire> {
  return fc.oneof(
    fc.tuple(valid, fc.nat()).map(([v, n]) => {
      const t = JSON.stringify(v) ?? 'null';
      return { text: t.slice(0, n % (t.length + 1)) };
    }),
    fc.tuple(valid, fc.nat(), fc.string({ unit: 'binary', maxLength: 8 })).map(([v, n, s]) => {
      const t = JSON.stringify(v) ?? 'null';
      const at = n % (t.length + 1);
      return { text: t.slice(0, at) + s + t.slice(at) };
    }),
    valid.map((v) => {
      const t = JSON.stringify(v) ?? '{}';
      // The same key twice: the last one wins in JSON.parse.
      return { text: t.startsWith('{') ? `{"type":"ping",${t.slice(1)}` : t };
    }),
    fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: Buffer.from(b).toString('base64'), asText: true })),
    fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: Buffer.from(b).toString('base64') })),
    fc.constantFrom<Wire>({ text: '' }, { text: 'null' }, { text: '[]' }, { text: '"x"' }, { text: '1e999' }, { text: '{"type":' }, { text: '\ufeff{}' }),
  );
}

/**
 * What a fuzzer sends: mostly well-formed messages (so the deep paths get
 * reached), many mutated, some damaged text.
 */
export function wireOf(valid: Arbitrary<unknown>, typeNames: readonly string[]): Arbitrary<Wire> {
  return fc.oneof(
    { arbitrary: valid.map((json) => ({ json })), weight: 5 },
    { arbitrary: mutated(valid, typeNames).map((json) => ({ json })), weight: 4 },
    { arbitrary: damagedText(valid), weight: 1 },
  );
}

/** The bytes to put on the wire and whether they go as a text frame. */
export function encodeWire(w: Wire): { data: string | Buffer; binary: boolean } {
  if ('json' in w) return { data: JSON.stringify(w.json) ?? 'null', binary: false };
  if ('text' in w) return { data: w.text, binary: false };
  return { data: Buffer.from(w.bytes, 'base64'), binary: !w.asText };
}

/** The JSON value a frame decodes to on the server side, or undefined when it is not JSON text. */
export function decodedWire(w: Wire): { ok: true; value: unknown } | { ok: false } {
  if ('bytes' in w) {
    if (!w.asText) return { ok: false };
    try {
      return { ok: true, value: JSON.parse(new TextDecoder('utf-8', { fatal: false }).decode(Buffer.from(w.bytes, 'base64'))) };
    } catch {
      return { ok: false };
    }
  }
  // The frame goes out as UTF-8, so a lone surrogate in the text arrives as U+FFFD.
  const text = 'json' in w ? (JSON.stringify(w.json) ?? 'null') : Buffer.from(w.text, 'utf8').toString('utf8');
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * Whether a frame is a text frame that is not UTF-8: ws closes such a
 * connection with 1007 and ends the socket at once, so the client may see
 * the close as 1006 when its next frames meet a reset (a race in TCP, not a
 * crash).
 */
export function isBadText(w: Wire): boolean {
  if (!('bytes' in w) || !w.asText) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(w.bytes, 'base64'));
    return false;
  } catch {
    return true;
  }
}
