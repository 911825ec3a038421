// Names that reach the core (groups, usernames) must be well-formed Unicode:
// a lone UTF-16 surrogate cannot be URL-encoded, written in a file name or
// compared reliably. The wire schemas refuse them first; the core checks
// again so that no way in can skip it.

/** A lone surrogate: with the `u` flag, a proper pair is one code point and does not match. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** True when `s` holds no lone UTF-16 surrogate (String.prototype.isWellFormed). */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
