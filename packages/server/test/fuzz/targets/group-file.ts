// Fuzz target: the group-file parser. A case is a group file generated from
// groupFileSchema (and mutated, or damaged as text). Properties: the parser
// either returns a description or throws GroupFileError naming the file
// (never anything else); what it accepts keeps the invariants the rest of
// the server relies on (hash parameters within HASH_LIMITS, a positive
// history age, permissions it knows, opening times in order).
import fc from 'fast-check';
import { permission } from '@atrium/protocol/galene';
import { GroupFileError, HASH_LIMITS, bcryptCost, groupFileSchema, parseGroupDescription } from '../../../src/groups/description.ts';
import type { Target } from '../support/harness.ts';
import { damagedText, mutated } from '../support/mutate.ts';
import { arbitraryOf, hostileString } from '../support/zod-arbitrary.ts';

const password = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constant({ type: 'wildcard' }),
  fc.record({ type: fc.constant('plain'), key: fc.string({ maxLength: 8 }) }),
  fc.record({ type: fc.constant('bcrypt'), key: fc.integer({ min: 0, max: 99 }).map((c) => `$2a$${String(c).padStart(2, '0')}$${'N'.repeat(53)}`) }),
  fc.record({
    type: fc.constant('pbkdf2'),
    hash: fc.constantFrom('sha-256', 'sha-1'),
    key: fc.constantFrom('ab', 'ab'.repeat(64), 'ab'.repeat(65), ''),
    salt: fc.constantFrom('', 'cd', 'c'),
    iterations: fc.oneof(fc.integer({ min: -1, max: 10_000 }), fc.constantFrom(1e6, 1e6 + 1, 1e12, 1.5)),
  }),
);
const user = fc.record(
  { password, permissions: fc.oneof(fc.constantFrom('op', 'present', 'message', 'observe', 'admin', 'nope'), fc.array(fc.constantFrom('op', 'present', 'record', 'token', 'x'))) },
  { requiredKeys: [] },
);
const file = fc.oneof(
  { arbitrary: arbitraryOf(groupFileSchema), weight: 2 },
  {
    arbitrary: fc.record(
      { users: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), hostileString), user, { maxKeys: 3 }), 'wildcard-user': user, 'allow-anonymous': fc.boolean() },
      { requiredKeys: [] },
    ),
    weight: 3,
  },
);

export type GroupFileCase = { json: unknown } | { text: string };

export const groupFileTarget: Target<GroupFileCase, undefined> = {
  name: 'group-file',
  arbitrary: fc.oneof(
    { arbitrary: file.map((json) => ({ json })), weight: 4 },
    { arbitrary: mutated(file, ['x']).map((json) => ({ json })), weight: 4 },
    {
      arbitrary: damagedText(file).map((w) => ({ text: 'text' in w ? w.text : 'json' in w ? JSON.stringify(w.json) : Buffer.from(w.bytes, 'base64').toString('utf8') })),
      weight: 1,
    },
  ),
  async setup() {
    return undefined;
  },
  async run(_env, c) {
    let json: unknown;
    if ('text' in c) {
      try {
        json = JSON.parse(c.text);
      } catch {
        return; // the store refuses it as "not valid JSON" before the parser sees it
      }
    } else json = c.json;
    let d: ReturnType<typeof parseGroupDescription>;
    try {
      d = parseGroupDescription('fuzz', 'groups/fuzz.json', json);
    } catch (e) {
      if (e instanceof GroupFileError && e.message.startsWith('groups/fuzz.json')) return;
      throw new Error(`the parser threw something other than a GroupFileError: ${(e as Error)?.stack ?? String(e)}`);
    }
    const users = [...Object.values(d.users), ...(d.wildcardUser ? [d.wildcardUser] : [])];
    for (const u of users) {
      for (const p of u.permissions) if (!permission.safeParse(p).success) throw new Error(`unknown permission ${p} accepted`);
      const pw = u.password;
      if (pw === undefined || typeof pw === 'string') continue;
      if (pw.type === 'bcrypt') {
        const cost = bcryptCost(pw.key);
        if (cost === undefined || cost > HASH_LIMITS.bcryptMaxCost || cost < HASH_LIMITS.bcryptMinCost) throw new Error(`bcrypt hash ${pw.key} accepted`);
      }
      if (pw.type === 'pbkdf2' && (!Number.isInteger(pw.iterations) || pw.iterations < 1 || pw.iterations > HASH_LIMITS.pbkdf2MaxIterations || pw.key.length > 2 * HASH_LIMITS.pbkdf2MaxKeyBytes)) {
        throw new Error(`pbkdf2 definition ${JSON.stringify(pw)} accepted`);
      }
    }
    if (!(d.maxHistoryAge > 0)) throw new Error(`max history age ${d.maxHistoryAge} accepted`);
    if (d.notBefore && d.expires && d.notBefore >= d.expires) throw new Error('not-before after expires accepted');
    if (d.maxClients !== undefined && !(d.maxClients > 0)) throw new Error(`max-clients ${d.maxClients} kept`);
  },
};
