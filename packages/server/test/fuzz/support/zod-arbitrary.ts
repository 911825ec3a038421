// fast-check arbitraries built from our zod 4 schemas, so the fuzzers
// generate what the wire schemas describe (and then mutate it): objects with
// their fields, strings within their lengths and patterns, enums, unions,
// optional and nullable fields. zod-fast-check only knows zod 3, so this
// walks zod 4's schema definitions itself; it covers the kinds our schemas
// use and falls back to any JSON value for the rest.
import fc, { type Arbitrary } from 'fast-check';
import type { z } from 'zod';

interface Def {
  type: string;
  checks?: { _zod: { def: Record<string, unknown> } }[];
  [k: string]: unknown;
}

/** Strings a fuzzer should try anywhere a string goes. */
export const hostileString: Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\udfff',
    'a\udc00b',
    '\ud83d',
    '\u202e',
    '\ufeff',
    '..',
    '../..',
    '%2e%2e',
    '/',
    '//',
    '.hidden',
    '__proto__',
    'constructor',
    '\\',
    '\r\n',
    'ground control',
    'room',
    '\u{1F600}',
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 8 }).map((s) => s.repeat(1 + (s.length % 5) * 200)),
);

function checksOf(def: Def): Record<string, unknown>[] {
  return (def.checks ?? []).map((c) => c._zod.def);
}

function stringArbitrary(def: Def): Arbitrary<string> {
  let min = 0;
  let max = Number.POSITIVE_INFINITY;
  let pattern: RegExp | undefined;
  const format = typeof def.format === 'string' ? def.format : undefined;
  for (const c of checksOf(def)) {
    if (c.check === 'min_length') min = Math.max(min, c.minimum as number);
    if (c.check === 'max_length') max = Math.min(max, c.maximum as number);
    if (c.check === 'length_equals') min = max = c.length as number;
    if (c.check === 'string_format' && c.format === 'regex') pattern = c.pattern as RegExp;
  }
  if (format === 'datetime') return fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString());
  if (format === 'url') return fc.webUrl();
  if (pattern !== undefined) return fc.stringMatching(pattern).filter((s) => s.length >= min && s.length <= max);
  const cap = Math.min(max, 64);
  const lo = Math.min(min, cap);
  const arbitraries: Arbitrary<string>[] = [fc.string({ minLength: lo, maxLength: cap }), fc.string({ unit: 'grapheme', minLength: lo, maxLength: cap })];
  // Sometimes right at the limit, where off-by-one mistakes live.
  if (Number.isFinite(max) && max > 64) arbitraries.push(fc.constant('x'.repeat(max)));
  return fc.oneof({ arbitrary: arbitraries[0]!, weight: 6 }, { arbitrary: arbitraries[1]!, weight: 3 }, ...arbitraries.slice(2).map((arbitrary) => ({ arbitrary, weight: 1 })));
}

function numberArbitrary(def: Def): Arbitrary<number> {
  let min = -1e9;
  let max = 1e9;
  let int = false;
  for (const c of checksOf(def)) {
    if (c.check === 'number_format' && typeof c.format === 'string' && c.format.includes('int')) int = true;
    if (c.check === 'greater_than') min = (c.value as number) + (c.inclusive ? 0 : int ? 1 : 1e-9);
    if (c.check === 'less_than') max = (c.value as number) - (c.inclusive ? 0 : int ? 1 : 1e-9);
  }
  if (int) return fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, Number.MAX_SAFE_INTEGER) });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** An arbitrary of values the schema describes (mostly valid: refinements are not solved, only approached). */
export function arbitraryOf(schema: z.ZodType, depth = 0): Arbitrary<unknown> {
  const def = (schema as unknown as { _zod: { def: Def } })._zod.def;
  const inner = (s: unknown) => arbitraryOf(s as z.ZodType, depth + 1);
  switch (def.type) {
    case 'string':
      return stringArbitrary(def);
    case 'number':
      return numberArbitrary(def);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'undefined':
      return fc.constant(undefined);
    case 'literal':
      return fc.constantFrom(...(def.values as unknown[]));
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries as Record<string, unknown>));
    case 'optional':
      return fc.option(inner(def.innerType), { nil: undefined, freq: 3 });
    case 'nullable':
      return fc.option(inner(def.innerType), { nil: null, freq: 4 });
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
      return inner(def.innerType);
    case 'pipe':
      return inner(def.in);
    case 'lazy':
      return depth > 6 ? fc.constant(null) : inner((def.getter as () => unknown)());
    case 'array': {
      let min = 0;
      let max = 4;
      for (const c of checksOf(def)) {
        if (c.check === 'min_length') min = c.minimum as number;
        if (c.check === 'max_length') max = Math.min(max, c.maximum as number);
      }
      return fc.array(inner(def.element), { minLength: min, maxLength: Math.max(min, max) });
    }
    case 'tuple':
      return fc.tuple(...(def.items as unknown[]).map(inner));
    case 'union':
      return fc.oneof(...(def.options as unknown[]).map(inner));
    case 'intersection':
      return inner(def.left);
    case 'record':
      return fc.dictionary(
        inner(def.keyType).map((k) => String(k)),
        inner(def.valueType),
        { maxKeys: 3 },
      );
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      const required: string[] = [];
      const arbs: Record<string, Arbitrary<unknown>> = {};
      for (const [k, s] of Object.entries(shape)) {
        arbs[k] = inner(s);
        const t = (s as unknown as { _zod: { def: Def } })._zod.def.type;
        if (t !== 'optional') required.push(k);
      }
      return fc.record(arbs, { requiredKeys: required });
    }
    default:
      // unknown, any, transform, custom…: any JSON value, sometimes hostile.
      return depth > 4 ? fc.oneof(fc.constant(null), fc.integer(), hostileString) : fc.oneof({ arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 4 }, { arbitrary: hostileString, weight: 1 });
  }
}
