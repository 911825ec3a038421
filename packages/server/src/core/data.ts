// User and group data: small JSON objects that members set with `setdata`.
// A patch merges key by key (null deletes a key) and the result stays small.
import type { UserData } from './client.ts';
import { CoreError } from './errors.ts';
import { LIMITS } from './vocabulary.ts';

/**
 * Merges `patch` into `base` without touching either. Keys are copied as own
 * properties, so "__proto__" is an ordinary key and no prototype changes.
 */
export function mergeData(base: UserData, patch: UserData, what: string): UserData {
  const entries = new Map(Object.entries(base));
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) entries.delete(k);
    else entries.set(k, v);
  }
  const next = Object.fromEntries(entries) as UserData;
  if (JSON.stringify(next).length > LIMITS.dataBytes) {
    throw new CoreError('too-large', `${what} may be at most ${LIMITS.dataBytes} bytes as JSON; this setdata would go over`);
  }
  return next;
}
