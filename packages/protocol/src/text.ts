// Names that come from the network (groups, pools, rooms, usernames, client
// and stream ids) must be well-formed Unicode before anything uses them: a
// lone UTF-16 surrogate cannot be URL-encoded, written to a file name or
// compared reliably, and JSON carries one only as an escape.
import { z } from 'zod';

/** A lone surrogate: with the `u` flag, a proper pair is one code point and does not match. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** True when `s` holds no lone UTF-16 surrogate (String.prototype.isWellFormed). */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export const NOT_WELL_FORMED = 'must be well-formed Unicode text (it holds a lone UTF-16 surrogate)';

/** A string of at most `max` characters that is well-formed Unicode. */
export function wellFormedString(max: number) {
  return z.string().max(max).refine(isWellFormed, { message: NOT_WELL_FORMED });
}
