// XMPP addresses (RFC 7622): parsing the three parts, and the mapping
// between Atrium group names and MUC room localparts. A group name may hold
// characters a localpart cannot ("/" between subgroups, spaces, "@"…), so
// room names use JID escaping (XEP-0106): `team/standup` is the room
// `team\2fstandup`. Group names never contain a backslash, so the mapping
// is one-to-one.
import { hasControlChars } from './xml.ts';

export interface Jid {
  local: string;
  domain: string;
  resource: string;
}

/** RFC 7622 §3: each part is at most 1023 octets. */
const MAX_PART_BYTES = 1023;

/** Characters a localpart may not hold (RFC 7622 §3.3.1), besides spaces and controls. */
const LOCAL_FORBIDDEN = /["&'/:<>@\s]/;

export class JidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JidError';
  }
}

/** Parses "local@domain/resource"; throws JidError saying what is wrong. The domain is case-folded;
 * the localpart keeps its case (rooms are looked up exactly, then without case). */
export function parseJid(s: string): Jid {
  const slash = s.indexOf('/');
  const resource = slash === -1 ? '' : s.slice(slash + 1);
  const head = slash === -1 ? s : s.slice(0, slash);
  const at = head.indexOf('@');
  const local = at === -1 ? '' : head.slice(0, at);
  const domain = (at === -1 ? head : head.slice(at + 1)).toLowerCase();
  if (domain === '') throw new JidError(`"${s}" has no domain`);
  if (at !== -1 && local === '') throw new JidError(`"${s}" has an empty localpart`);
  if (slash !== -1 && resource === '') throw new JidError(`"${s}" has an empty resource`);
  if (LOCAL_FORBIDDEN.test(local) || hasControlChars(local)) throw new JidError(`the localpart of "${s}" holds a character it may not (" & ' / : < > @ or a space)`);
  if (/[\s/@]/.test(domain) || hasControlChars(domain)) throw new JidError(`the domain of "${s}" is not a host name`);
  if (hasControlChars(resource)) throw new JidError(`the resource of "${s}" holds control characters`);
  for (const [part, v] of [
    ['localpart', local],
    ['domain', domain],
    ['resource', resource],
  ] as const) {
    if (Buffer.byteLength(v) > MAX_PART_BYTES) throw new JidError(`the ${part} of the address is over ${MAX_PART_BYTES} bytes`);
  }
  return { local, domain, resource };
}

export function formatJid(j: { local?: string; domain: string; resource?: string }): string {
  let s = j.domain;
  if (j.local) s = `${j.local}@${s}`;
  if (j.resource) s = `${s}/${j.resource}`;
  return s;
}

export function bare(j: Jid): string {
  return formatJid({ local: j.local, domain: j.domain });
}

/** XEP-0106 escapes, in the order the XEP lists them. */
const ESCAPES: [string, string][] = [
  [' ', '\\20'],
  ['"', '\\22'],
  ['&', '\\26'],
  ["'", '\\27'],
  ['/', '\\2f'],
  [':', '\\3a'],
  ['<', '\\3c'],
  ['>', '\\3e'],
  ['@', '\\40'],
];

/** The room localpart of a group: `team/standup` -> `team\2fstandup`. */
export function roomOfGroup(group: string): string {
  let s = '';
  for (const ch of group) {
    const e = ESCAPES.find(([c]) => c === ch);
    s += e ? e[1] : ch;
  }
  return s;
}

/** The group a room localpart names: `team\2fstandup` -> `team/standup` (escapes are case-insensitive). */
export function groupOfRoom(local: string): string {
  return local.replace(/\\(20|22|26|27|2f|3a|3c|3e|40|5c)/gi, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
