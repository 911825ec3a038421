// Jingle description <-> XML elements (ltx), with every value checked on
// the way in: a Jingle stanza from the network becomes data of model.ts
// only when each number is in range and each list within bounds; otherwise
// JingleXmlError says which element is wrong.
import { Element } from 'ltx';
import { hasControlChars } from '../xml.ts';
import type { JingleCandidate, JingleContent, JingleDescription, JingleFeedback, JingleSource, Senders } from './model.ts';

export const JNS = {
  jingle: 'urn:xmpp:jingle:1',
  rtp: 'urn:xmpp:jingle:apps:rtp:1',
  rtcpFb: 'urn:xmpp:jingle:apps:rtp:rtcp-fb:0',
  hdrext: 'urn:xmpp:jingle:apps:rtp:rtp-hdrext:0',
  ssma: 'urn:xmpp:jingle:apps:rtp:ssma:0',
  grouping: 'urn:xmpp:jingle:apps:grouping:0',
  ice: 'urn:xmpp:jingle:transports:ice-udp:1',
  dtls: 'urn:xmpp:jingle:apps:dtls:0',
  sctp: 'urn:xmpp:jingle:transports:dtls-sctp:1',
  jitmeet: 'http://jitsi.org/jitmeet',
  colibri: 'http://jitsi.org/protocol/colibri',
  errors: 'urn:xmpp:jingle:errors:1',
} as const;

/** Bounds on what one Jingle element may carry. */
export const JINGLE_LIMITS = { contents: 16, payloads: 64, sources: 1024, groups: 512, candidates: 64, extensions: 32, parameters: 64, feedback: 32 };

export class JingleXmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JingleXmlError';
  }
}

const SENDERS = new Set(['both', 'initiator', 'responder', 'none']);

// ---------------------------------------------------------------------
// Writing

function node(name: string, attrs: Record<string, string | number | undefined>, ...children: (Element | undefined)[]): Element {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = String(v);
  const e = new Element(name, a);
  for (const c of children) if (c) e.cnode(c);
  return e;
}

function feedbackElements(fb: JingleFeedback[]): Element[] {
  return fb.map((f) => node('rtcp-fb', { xmlns: JNS.rtcpFb, type: f.type, subtype: f.subtype }));
}

export function candidateElement(c: JingleCandidate): Element {
  return node('candidate', {
    component: c.component,
    foundation: c.foundation,
    generation: c.generation,
    id: c.id,
    ip: c.ip,
    network: c.network,
    port: c.port,
    priority: c.priority,
    protocol: c.protocol,
    type: c.type,
    'rel-addr': c.relAddr,
    'rel-port': c.relPort,
    tcptype: c.tcptype,
  });
}

export function transportElement(t: JingleContent['transport'], withCandidates = true): Element {
  const e = node('transport', { xmlns: JNS.ice, ufrag: t.ufrag, pwd: t.pwd });
  for (const f of t.fingerprints) {
    const fp = node('fingerprint', { xmlns: JNS.dtls, hash: f.hash, setup: f.setup });
    fp.t(f.value);
    e.cnode(fp);
  }
  if (t.sctp) e.cnode(node('sctpmap', { xmlns: JNS.sctp, number: t.sctp.port, protocol: 'webrtc-datachannel', streams: 0 }));
  if (t.webSocket) e.cnode(node('web-socket', { xmlns: JNS.colibri, url: t.webSocket }));
  if (withCandidates) for (const c of t.candidates) e.cnode(candidateElement(c));
  return e;
}

export function sourceElement(s: JingleSource): Element {
  return node(
    'source',
    { xmlns: JNS.ssma, ssrc: s.ssrc, name: s.name, videoType: s.videoType },
    s.cname ? node('parameter', { name: 'cname', value: s.cname }) : undefined,
    s.msid ? node('parameter', { name: 'msid', value: s.msid }) : undefined,
    s.owner ? node('ssrc-info', { xmlns: JNS.jitmeet, owner: s.owner }) : undefined,
  );
}

export function contentElement(c: JingleContent): Element {
  const e = node('content', { creator: c.creator, name: c.name, senders: c.rejected ? 'rejected' : c.senders });
  const r = c.rtp;
  if (r) {
    const d = node('description', { xmlns: JNS.rtp, media: r.media });
    for (const p of r.payloads) {
      const pt = node('payload-type', { id: p.id, name: p.name, clockrate: p.clockrate, channels: p.channels !== undefined && p.channels > 1 ? p.channels : undefined });
      for (const x of p.parameters) pt.cnode(node('parameter', { name: x.name, value: x.value }));
      for (const f of feedbackElements(p.feedback)) pt.cnode(f);
      d.cnode(pt);
    }
    for (const f of feedbackElements(r.feedback)) d.cnode(f);
    for (const x of r.extensions) d.cnode(node('rtp-hdrext', { xmlns: JNS.hdrext, id: x.id, uri: x.uri, senders: x.senders }));
    if (r.extmapAllowMixed) d.cnode(node('extmap-allow-mixed', { xmlns: JNS.hdrext }));
    if (r.rtcpMux) d.cnode(node('rtcp-mux', {}));
    if (r.rtcpRsize) d.cnode(node('rtcp-rsize', { xmlns: 'urn:xmpp:jingle:apps:rtp:rtcp-rsize:0' }));
    for (const s of r.sources) d.cnode(sourceElement(s));
    for (const g of r.ssrcGroups) d.cnode(node('ssrc-group', { xmlns: JNS.ssma, semantics: g.semantics }, ...g.ssrcs.map((ssrc) => node('source', { ssrc }))));
    if (r.rids.length > 0) {
      for (const rid of r.rids) d.cnode(node('source', { xmlns: JNS.ssma, rid, sender: r.ridsSentBy }));
      if (r.simulcast) d.cnode(node('rid-group', { xmlns: JNS.ssma, semantics: 'SIM' }, ...r.rids.map((rid) => node('source', { rid }))));
    }
    e.cnode(d);
  }
  e.cnode(transportElement(c.transport));
  return e;
}

/** Appends the contents and the BUNDLE group of a description to a <jingle/> element. */
export function appendDescription(jingle: Element, desc: JingleDescription): Element {
  if (desc.bundle && desc.bundle.length > 0) jingle.cnode(node('group', { xmlns: JNS.grouping, semantics: 'BUNDLE' }, ...desc.bundle.map((name) => node('content', { name }))));
  for (const c of desc.contents) jingle.cnode(contentElement(c));
  return jingle;
}

// ---------------------------------------------------------------------
// Reading

function kids(e: Element, name: string, ns?: string): Element[] {
  return e.children.filter((c): c is Element => typeof c !== 'string' && c.getName() === name && (ns === undefined || c.getNS() === ns));
}

function str(e: Element, name: string, what: string, opts: { required?: boolean; max?: number } = {}): string | undefined {
  const v: unknown = e.attrs[name];
  if (v === undefined) {
    if (opts.required) throw new JingleXmlError(`<${what}> needs a "${name}" attribute`);
    return undefined;
  }
  const s = String(v);
  if (s.length > (opts.max ?? 1024)) throw new JingleXmlError(`the "${name}" of <${what}> is over ${opts.max ?? 1024} characters`);
  return s;
}

function int(e: Element, name: string, what: string, min: number, max: number, required = true): number | undefined {
  const s = str(e, name, what, { required, max: 16 });
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s)) throw new JingleXmlError(`the "${name}" of <${what}> must be a whole number, not "${s}"`);
  const n = Number(s);
  if (n < min || n > max) throw new JingleXmlError(`the "${name}" of <${what}> must be between ${min} and ${max}, not ${n}`);
  return n;
}

function bounded<T>(list: T[], max: number, what: string): T[] {
  if (list.length > max) throw new JingleXmlError(`more than ${max} ${what}`);
  return list;
}

function readFeedback(e: Element): JingleFeedback[] {
  return bounded(kids(e, 'rtcp-fb', JNS.rtcpFb), JINGLE_LIMITS.feedback, '<rtcp-fb> elements').map((f) => ({
    type: str(f, 'type', 'rtcp-fb', { required: true, max: 64 })!,
    subtype: str(f, 'subtype', 'rtcp-fb', { max: 64 }),
  }));
}

export function readCandidate(c: Element): JingleCandidate {
  const ip = str(c, 'ip', 'candidate', { required: true, max: 256 })!;
  if (/\s/.test(ip)) throw new JingleXmlError('a candidate ip must not hold spaces');
  const token = (name: string, required: boolean) => {
    const v = str(c, name, 'candidate', { required, max: 64 });
    if (v !== undefined && !/^[A-Za-z0-9+/._:-]+$/.test(v)) throw new JingleXmlError(`the "${name}" of <candidate> holds characters an SDP candidate cannot`);
    return v;
  };
  const relAddr = token('rel-addr', false);
  return {
    foundation: token('foundation', true)!,
    component: int(c, 'component', 'candidate', 1, 256)!,
    protocol: token('protocol', true)!.toLowerCase(),
    priority: int(c, 'priority', 'candidate', 0, 2 ** 32 - 1)!,
    ip,
    port: int(c, 'port', 'candidate', 0, 65535)!,
    type: token('type', true)!,
    relAddr,
    relPort: int(c, 'rel-port', 'candidate', 0, 65535, false),
    tcptype: token('tcptype', false),
    generation: int(c, 'generation', 'candidate', 0, 255, false) ?? 0,
    id: str(c, 'id', 'candidate', { max: 128 }) ?? '',
    network: int(c, 'network', 'candidate', 0, 65535, false),
  };
}

export function readTransport(t: Element | undefined, what: string): JingleContent['transport'] {
  if (!t) return { fingerprints: [], candidates: [] };
  const ufrag = str(t, 'ufrag', 'transport', { max: 256 });
  const pwd = str(t, 'pwd', 'transport', { max: 256 });
  for (const [n, v] of [
    ['ufrag', ufrag],
    ['pwd', pwd],
  ] as const) {
    if (v !== undefined && !/^[A-Za-z0-9+/]+$/.test(v)) throw new JingleXmlError(`the ICE ${n} of ${what} must be ICE characters (letters, digits, "+" and "/")`);
  }
  const fingerprints = bounded(kids(t, 'fingerprint', JNS.dtls), 4, 'fingerprints').map((f) => {
    const value = f.getText().trim();
    if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){15,63}$/.test(value)) throw new JingleXmlError(`the DTLS fingerprint of ${what} is not a colon-separated hex digest`);
    const setup = str(f, 'setup', 'fingerprint', { max: 16 });
    if (setup !== undefined && !['active', 'passive', 'actpass', 'holdconn'].includes(setup)) throw new JingleXmlError(`the DTLS setup of ${what} must be active, passive or actpass`);
    const hash = str(f, 'hash', 'fingerprint', { required: true, max: 16 })!;
    if (!/^[A-Za-z0-9-]+$/.test(hash)) throw new JingleXmlError(`the fingerprint hash of ${what} is not a hash name`);
    return { hash, setup, value };
  });
  const candidates = bounded(kids(t, 'candidate'), JINGLE_LIMITS.candidates, `candidates in ${what}`).map(readCandidate);
  const sctpmap = kids(t, 'sctpmap', JNS.sctp)[0];
  const transport: JingleContent['transport'] = { ufrag, pwd, fingerprints, candidates };
  if (sctpmap) transport.sctp = { port: int(sctpmap, 'number', 'sctpmap', 0, 65535)! };
  const ws = kids(t, 'web-socket', JNS.colibri)[0];
  if (ws) transport.webSocket = str(ws, 'url', 'web-socket', { max: 2048 });
  return transport;
}

function safeToken(v: string, what: string): string {
  if (!/^[\x21-\x7e]+$/.test(v)) throw new JingleXmlError(`${what} must be printable ASCII without spaces`);
  return v;
}

function readContent(c: Element, sourcesOnly: boolean): JingleContent {
  const name = safeToken(str(c, 'name', 'content', { required: true, max: 64 })!, 'a content name');
  const what = `content "${name}"`;
  const creator = str(c, 'creator', 'content', { max: 16 }) ?? 'initiator';
  if (creator !== 'initiator' && creator !== 'responder') throw new JingleXmlError(`the creator of ${what} must be initiator or responder`);
  const sendersAttr = str(c, 'senders', 'content', { max: 16 }) ?? 'both';
  if (!SENDERS.has(sendersAttr) && sendersAttr !== 'rejected') throw new JingleXmlError(`the senders of ${what} must be both, initiator, responder or none`);
  const content: JingleContent = {
    name,
    creator,
    senders: sendersAttr === 'rejected' ? 'none' : (sendersAttr as Senders),
    transport: readTransport(kids(c, 'transport', JNS.ice)[0], what),
  };
  if (sendersAttr === 'rejected') content.rejected = true;
  const d = kids(c, 'description', JNS.rtp)[0];
  if (!d) {
    if (!content.transport.sctp) throw new JingleXmlError(`${what} has neither an RTP <description/> nor an SCTP data channel`);
    return content;
  }
  const media = str(d, 'media', 'description', { required: true, max: 16 });
  if (media !== 'audio' && media !== 'video') throw new JingleXmlError(`the media of ${what} must be audio or video, not "${media}"`);
  const payloads = bounded(kids(d, 'payload-type'), JINGLE_LIMITS.payloads, `payload types in ${what}`).map((p) => ({
    id: int(p, 'id', 'payload-type', 0, 127)!,
    name: safeToken(str(p, 'name', 'payload-type', { required: true, max: 64 })!, 'a codec name'),
    clockrate: int(p, 'clockrate', 'payload-type', 1, 10_000_000, false),
    channels: int(p, 'channels', 'payload-type', 1, 16, false),
    parameters: bounded(kids(p, 'parameter'), JINGLE_LIMITS.parameters, 'parameters').map((x) => ({
      name: safeParam(str(x, 'name', 'parameter', { max: 128 }) ?? ''),
      value: safeParam(str(x, 'value', 'parameter', { required: true, max: 512 })!),
    })),
    feedback: readFeedback(p),
  }));
  if (payloads.length === 0 && !content.rejected && !sourcesOnly) throw new JingleXmlError(`${what} lists no payload types`);
  const sources: JingleSource[] = [];
  const rids: string[] = [];
  let ridsSentBy: 'initiator' | 'responder' | undefined;
  for (const s of bounded(kids(d, 'source', JNS.ssma), JINGLE_LIMITS.sources, `sources in ${what}`)) {
    const rid = str(s, 'rid', 'source', { max: 32 });
    if (rid !== undefined) {
      rids.push(safeToken(rid, 'a rid'));
      const sender = str(s, 'sender', 'source', { max: 16 });
      if (sender === 'initiator' || sender === 'responder') ridsSentBy = sender;
      continue;
    }
    const src: JingleSource = { ssrc: int(s, 'ssrc', 'source', 0, 2 ** 32 - 1)! };
    const n = str(s, 'name', 'source', { max: 128 });
    if (n !== undefined) src.name = safeToken(n, 'a source name');
    const vt = str(s, 'videoType', 'source', { max: 32 });
    if (vt !== undefined) src.videoType = safeToken(vt, 'a videoType');
    for (const p of bounded(kids(s, 'parameter'), 8, 'source parameters')) {
      const pn = str(p, 'name', 'parameter', { max: 32 });
      const pv = str(p, 'value', 'parameter', { max: 256 });
      if (pv === undefined) continue;
      if (pn === 'msid') src.msid = safeParam(pv);
      else if (pn === 'cname') src.cname = safeToken(pv, 'a cname');
    }
    const info = kids(s, 'ssrc-info', JNS.jitmeet)[0];
    if (info) src.owner = str(info, 'owner', 'ssrc-info', { max: 3072 });
    sources.push(src);
  }
  const ssrcGroups = bounded(kids(d, 'ssrc-group', JNS.ssma), JINGLE_LIMITS.groups, `source groups in ${what}`).map((g) => ({
    semantics: safeToken(str(g, 'semantics', 'ssrc-group', { required: true, max: 16 })!, 'a group semantics'),
    ssrcs: bounded(kids(g, 'source'), 8, 'sources in a group').map((s) => int(s, 'ssrc', 'source', 0, 2 ** 32 - 1)!),
  }));
  const extensions = bounded(kids(d, 'rtp-hdrext', JNS.hdrext), JINGLE_LIMITS.extensions, `header extensions in ${what}`).map((x) => {
    const senders = str(x, 'senders', 'rtp-hdrext', { max: 16 });
    if (senders !== undefined && !SENDERS.has(senders)) throw new JingleXmlError('the senders of <rtp-hdrext> must be both, initiator, responder or none');
    return { id: int(x, 'id', 'rtp-hdrext', 1, 255)!, uri: safeToken(str(x, 'uri', 'rtp-hdrext', { required: true, max: 256 })!, 'an extension URI'), senders: senders as Senders | undefined };
  });
  content.rtp = {
    media,
    payloads,
    feedback: readFeedback(d),
    extensions,
    extmapAllowMixed: kids(d, 'extmap-allow-mixed', JNS.hdrext).length > 0,
    rtcpMux: kids(d, 'rtcp-mux').length > 0,
    rtcpRsize: kids(d, 'rtcp-rsize').length > 0,
    sources,
    ssrcGroups,
    rids,
    ridsSentBy,
    simulcast: kids(d, 'rid-group', JNS.ssma).some((g) => g.attrs.semantics === 'SIM'),
  };
  return content;
}

/** fmtp and msid values end up inside SDP lines: no line breaks, no control characters. */
function safeParam(v: string): string {
  if (hasControlChars(v)) throw new JingleXmlError('a parameter holds control characters or line breaks');
  return v;
}

/**
 * Reads the contents and BUNDLE group of a <jingle/> element; with
 * `sourcesOnly`, those of a source-add or source-remove (Jitsi's), whose
 * descriptions carry sources and no payload types.
 */
export function readDescription(jingle: Element, opts: { sourcesOnly?: boolean } = {}): JingleDescription {
  const contents = bounded(kids(jingle, 'content'), JINGLE_LIMITS.contents, 'contents').map((c) => readContent(c, opts.sourcesOnly ?? false));
  const names = new Set<string>();
  for (const c of contents) {
    if (names.has(c.name)) throw new JingleXmlError(`two contents are named "${c.name}"`);
    names.add(c.name);
  }
  const desc: JingleDescription = { contents };
  const group = kids(jingle, 'group', JNS.grouping).find((g) => g.attrs.semantics === 'BUNDLE' || g.attrs.type === 'BUNDLE');
  if (group) desc.bundle = bounded(kids(group, 'content'), JINGLE_LIMITS.contents, 'bundled contents').map((c) => safeToken(str(c, 'name', 'content', { required: true, max: 64 })!, 'a content name'));
  return desc;
}
