// Service discovery (XEP-0030): what the server, the MUC service, each room
// and the focus say they are and what they support. Only what is
// implemented is announced.
import type { Group } from '../../core/group.ts';
import type { XmppContext } from './context.ts';
import { NS } from './stanza.ts';
import { type Element, el } from './xml.ts';

const SERVER_FEATURES = [NS.discoInfo, NS.discoItems, NS.ping, NS.sm, NS.version, NS.time];
const MUC_SERVICE_FEATURES = [NS.discoInfo, NS.discoItems, NS.muc, NS.ping];
const FOCUS_FEATURES = [
  NS.discoInfo,
  NS.focus,
  NS.jingle,
  NS.jingleRtp,
  NS.jingleIce,
  NS.jingleDtls,
  'urn:xmpp:jingle:apps:rtp:audio',
  'urn:xmpp:jingle:apps:rtp:video',
  'urn:ietf:rfc:5888',
  'urn:ietf:rfc:5761',
];

function query(identities: Element[], features: string[], ...extra: Element[]): Element {
  return el('query', { xmlns: NS.discoInfo }, ...identities, ...features.map((f) => el('feature', { var: f })), ...extra);
}

export function discoInfo(what: 'server' | 'muc-service' | 'focus', ctx: XmppContext): Element {
  switch (what) {
    case 'server':
      return query([el('identity', { category: 'server', type: 'im', name: 'Atrium' })], SERVER_FEATURES);
    case 'muc-service':
      return query([el('identity', { category: 'conference', type: 'text', name: 'Atrium groups' })], MUC_SERVICE_FEATURES);
    case 'focus':
      return query([el('identity', { category: 'component', type: 'generic', name: `Atrium conference focus on ${ctx.domain}` })], FOCUS_FEATURES);
  }
}

/** A room's disco#info: what the group's file says about it, in XEP-0045 words. */
export function roomDiscoInfo(
  name: string,
  group: Group | undefined,
  desc: { displayName?: string | undefined; description?: string | undefined; public: boolean; needsPassword: boolean; locked: boolean },
): Element {
  const features = [
    NS.muc,
    NS.discoInfo,
    'muc_semianonymous',
    'muc_unmoderated',
    desc.public ? 'muc_public' : 'muc_hidden',
    desc.locked ? 'muc_membersonly' : 'muc_open',
    desc.needsPassword ? 'muc_passwordprotected' : 'muc_unsecured',
    'muc_persistent',
    'http://jabber.org/protocol/muc#stable_id',
  ];
  const form = el(
    'x',
    { xmlns: NS.dataForms, type: 'result' },
    el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', {}, 'http://jabber.org/protocol/muc#roominfo')),
    el('field', { var: 'muc#roominfo_description', label: 'Description' }, el('value', {}, desc.description ?? '')),
    el('field', { var: 'muc#roominfo_occupants', label: 'Number of occupants' }, el('value', {}, String(group?.size ?? 0))),
    el('field', { var: 'muc#roomconfig_roomname', label: 'Name' }, el('value', {}, desc.displayName ?? name)),
  );
  return query([el('identity', { category: 'conference', type: 'text', name: desc.displayName ?? name })], features, form);
}
