// Namespaces, stanza errors (RFC 6120 §8.3) and stream errors (§4.9) of the
// XMPP dialect, and the mapping from the core's error codes to stanza error
// conditions.
import type { ErrorCode } from '../../core/errors.ts';
import { type Element, attr, el } from './xml.ts';

export const NS = {
  client: 'jabber:client',
  stream: 'http://etherx.jabber.org/streams',
  streams: 'urn:ietf:params:xml:ns:xmpp-streams',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  sm: 'urn:xmpp:sm:3',
  ping: 'urn:xmpp:ping',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  roster: 'jabber:iq:roster',
  muc: 'http://jabber.org/protocol/muc',
  mucUser: 'http://jabber.org/protocol/muc#user',
  mucAdmin: 'http://jabber.org/protocol/muc#admin',
  mucOwner: 'http://jabber.org/protocol/muc#owner',
  nick: 'http://jabber.org/protocol/nick',
  delay: 'urn:xmpp:delay',
  dataForms: 'jabber:x:data',
  bosh: 'http://jabber.org/protocol/httpbind',
  xbosh: 'urn:xmpp:xbosh',
  caps: 'http://jabber.org/protocol/caps',
  focus: 'http://jitsi.org/protocol/focus',
  jingle: 'urn:xmpp:jingle:1',
  jingleRtp: 'urn:xmpp:jingle:apps:rtp:1',
  jingleIce: 'urn:xmpp:jingle:transports:ice-udp:1',
  jingleDtls: 'urn:xmpp:jingle:apps:dtls:0',
  jingleErrors: 'urn:xmpp:jingle:errors:1',
  time: 'urn:xmpp:time',
  version: 'jabber:iq:version',
} as const;

/** RFC 6120 §8.3.3 conditions, with the error type each goes with. */
export const STANZA_ERRORS = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'unexpected-request': 'wait',
} as const;

export type StanzaErrorCondition = keyof typeof STANZA_ERRORS;

/** A stanza refused with a condition and a sentence for people. */
export class StanzaError extends Error {
  constructor(
    readonly condition: StanzaErrorCondition,
    message: string,
    /** An application-specific condition element (e.g. a Jingle error). */
    readonly extra?: Element,
  ) {
    super(message);
    this.name = 'StanzaError';
  }
}

/** The <error/> child of an error stanza. */
export function errorElement(condition: StanzaErrorCondition, text: string | undefined, extra?: Element): Element {
  return el('error', { type: STANZA_ERRORS[condition] }, el(condition, { xmlns: NS.stanzas }), text ? el('text', { xmlns: NS.stanzas, 'xml:lang': 'en' }, text) : undefined, extra);
}

/** The error reply to a stanza (RFC 6120 §8.3.1): addresses swapped, the same id and name. */
export function errorReply(stanza: Element, condition: StanzaErrorCondition, text?: string, extra?: Element, from?: string): Element {
  return el(stanza.getName(), { xmlns: NS.client, type: 'error', id: attr(stanza, 'id'), from: attr(stanza, 'to') ?? from, to: attr(stanza, 'from') }, errorElement(condition, text, extra));
}

/** RFC 6120 §4.9.3 stream error conditions. */
export type StreamErrorCondition =
  | 'bad-format'
  | 'conflict'
  | 'connection-timeout'
  | 'host-unknown'
  | 'internal-server-error'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

/** <stream:error/> with the condition and a sentence. */
export function streamErrorElement(condition: StreamErrorCondition, text: string): Element {
  return el('stream:error', { 'xmlns:stream': NS.stream }, el(condition, { xmlns: NS.streams }), el('text', { xmlns: NS.streams, 'xml:lang': 'en' }, text));
}

/** The stanza error condition for a refusal by the core. */
export function conditionOf(code: ErrorCode): StanzaErrorCondition {
  switch (code) {
    case 'not-authorised':
      return 'not-authorized';
    case 'need-username':
      return 'not-acceptable';
    case 'not-permitted':
      return 'forbidden';
    case 'no-such-group':
    case 'no-such-user':
    case 'no-such-token':
      return 'item-not-found';
    case 'group-locked':
      // A locked group admits operators only: XEP-0045's members-only room.
      return 'registration-required';
    case 'too-many-clients':
      return 'service-unavailable';
    case 'group-not-open':
    case 'group-expired':
      return 'not-allowed';
    case 'already-joined':
      return 'conflict';
    case 'rate-limited':
      return 'resource-constraint';
    case 'too-large':
      return 'policy-violation';
    case 'not-supported':
      return 'feature-not-implemented';
    case 'bad-message':
    case 'bad-json':
    case 'unknown-type':
    case 'bad-version':
      return 'bad-request';
    case 'not-joined':
      return 'not-acceptable';
    case 'internal':
      return 'internal-server-error';
  }
}
