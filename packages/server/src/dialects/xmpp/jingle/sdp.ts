// SDP <-> Jingle, both ways, on the data shape of model.ts (sdp-transform
// reads and writes the SDP). Directions are relative: an SDP is written by
// one party (the initiator's offer, the responder's answer), and Jingle's
// `senders` names parties, so each conversion is told whose SDP it is.
import sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import type { JingleCandidate, JingleContent, JingleDescription, JingleFeedback, JingleRole, JingleSource, Senders } from './model.ts';

export class JingleSdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JingleSdpError';
  }
}

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

const other = (r: JingleRole): JingleRole => (r === 'initiator' ? 'responder' : 'initiator');

function sendersOf(direction: Direction | undefined, author: JingleRole): Senders {
  switch (direction ?? 'sendrecv') {
    case 'sendrecv':
      return 'both';
    case 'sendonly':
      return author;
    case 'recvonly':
      return other(author);
    case 'inactive':
      return 'none';
  }
}

function directionOf(senders: Senders, author: JingleRole): Direction {
  if (senders === 'both') return 'sendrecv';
  if (senders === 'none') return 'inactive';
  return senders === author ? 'sendonly' : 'recvonly';
}

export interface ToJingleOptions {
  /** Whose SDP this is. */
  author: JingleRole;
  /** The creator attribute of the contents (the party that created them: the initiator, in an offer and its answer). */
  creator?: JingleRole;
  /** Content names: the mid (one content per m-line, as in peer-to-peer Jingle), or the media type (Jitsi's bridge sessions). */
  names?: 'mid' | 'media';
}

/** An SDP (offer or answer) as a Jingle description. */
export function sdpToJingle(sdp: string, opts: ToJingleOptions): JingleDescription {
  let session: SessionDescription;
  try {
    session = sdpTransform.parse(sdp);
  } catch (e) {
    throw new JingleSdpError(`the SDP could not be read: ${(e as Error).message}`);
  }
  if (!session.media || session.media.length === 0) throw new JingleSdpError('the SDP has no media sections');
  const names = opts.names ?? 'mid';
  const contents: JingleContent[] = [];
  const nameOfMid = new Map<string, string>();
  for (const [index, m] of session.media.entries()) {
    const mid = m.mid === undefined ? String(index) : String(m.mid);
    const name = names === 'mid' ? mid : m.type === 'application' ? 'data' : m.type;
    nameOfMid.set(mid, name);
    contents.push(mediaToContent(m, session, name, opts));
  }
  const bundleGroup = session.groups?.find((g) => g.type === 'BUNDLE');
  const desc: JingleDescription = { contents };
  if (bundleGroup) desc.bundle = bundleGroup.mids.split(' ').map((mid) => nameOfMid.get(mid) ?? mid);
  return desc;
}

function mediaToContent(m: MediaDescription, s: SessionDescription, name: string, opts: ToJingleOptions): JingleContent {
  const fingerprint = m.fingerprint ?? s.fingerprint;
  const transport: JingleContent['transport'] = {
    ufrag: m.iceUfrag ?? s.iceUfrag,
    pwd: m.icePwd ?? s.icePwd,
    fingerprints: fingerprint ? [{ hash: fingerprint.type, setup: m.setup ?? s.setup, value: fingerprint.hash }] : [],
    candidates: (m.candidates ?? []).map((c) => ({
      foundation: String(c.foundation),
      component: c.component,
      protocol: c.transport.toLowerCase(),
      priority: c.priority,
      ip: c.ip,
      port: c.port,
      type: c.type,
      relAddr: c.raddr,
      relPort: c.rport,
      tcptype: c.tcptype,
      generation: c.generation ?? 0,
      id: `${c.foundation}-${c.component}-${c.transport.toLowerCase()}`,
      network: c['network-id'],
    })),
  };
  const content: JingleContent = { name, creator: opts.creator ?? 'initiator', senders: sendersOf(m.direction, opts.author), transport };
  if (m.port === 0) content.rejected = true;
  if (m.type === 'application') {
    transport.sctp = { port: m.sctpPort ?? m.sctpmap?.sctpmapNumber ?? 5000, maxMessageSize: m.maxMessageSize };
    return content;
  }
  if (m.type !== 'audio' && m.type !== 'video') throw new JingleSdpError(`m=${m.type} sections cannot be carried by Jingle RTP; only audio, video and application`);
  const feedbackFor = (pt: number | string): JingleFeedback[] => (m.rtcpFb ?? []).filter((f) => String(f.payload) === String(pt)).map((f) => ({ type: f.type, subtype: f.subtype }));
  const pts = String(m.payloads ?? '')
    .split(' ')
    .filter((p) => p !== '')
    .map(Number);
  const payloads = pts.flatMap((pt) => {
    const rtp = m.rtp.find((r) => r.payload === pt);
    if (!rtp) return [];
    const fmtp = m.fmtp.find((f) => f.payload === pt);
    return [
      {
        id: pt,
        name: rtp.codec,
        clockrate: rtp.rate,
        channels: rtp.encoding,
        parameters: fmtp ? parseFmtp(fmtp.config) : [],
        feedback: feedbackFor(pt),
      },
    ];
  });
  // One source per SSRC, its attributes gathered from the a=ssrc lines.
  const sources = new Map<number, JingleSource>();
  for (const line of m.ssrcs ?? []) {
    const id = Number(line.id);
    let src = sources.get(id);
    if (!src) {
      src = { ssrc: id };
      sources.set(id, src);
    }
    if (line.attribute === 'msid') src.msid = line.value;
    else if (line.attribute === 'cname') src.cname = line.value;
    else if (line.attribute === 'name') src.name = line.value;
    else if (line.attribute === 'videoType') src.videoType = line.value;
  }
  const mediaMsid = m.msid?.[0];
  if (mediaMsid) for (const src of sources.values()) src.msid ??= `${mediaMsid.id} ${mediaMsid.appdata ?? ''}`.trim();
  const rids = (m.rids ?? []).map((r) => String(r.id));
  const ridSendsHere = (m.rids ?? []).some((r) => r.direction === 'send');
  content.rtp = {
    media: m.type,
    payloads,
    feedback: feedbackFor('*'),
    extensions: (m.ext ?? []).map((x) => ({ id: x.value, uri: x.uri, senders: x.direction ? sendersOf(x.direction as Direction, opts.author) : undefined })),
    extmapAllowMixed: m.extmapAllowMixed !== undefined || s.extmapAllowMixed !== undefined,
    rtcpMux: m.rtcpMux !== undefined,
    rtcpRsize: m.rtcpRsize !== undefined,
    sources: [...sources.values()],
    ssrcGroups: (m.ssrcGroups ?? []).map((g) => ({ semantics: g.semantics, ssrcs: g.ssrcs.split(' ').filter(Boolean).map(Number) })),
    rids,
    ridsSentBy: rids.length === 0 ? undefined : ridSendsHere ? opts.author : other(opts.author),
    simulcast: m.simulcast !== undefined,
  };
  return content;
}

function parseFmtp(config: string): { name: string; value: string }[] {
  return config
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq === -1 ? { name: '', value: p } : { name: p.slice(0, eq).trim(), value: p.slice(eq + 1).trim() };
    });
}

export interface ToSdpOptions {
  /** Whose SDP to write (the party whose side the description is). */
  author: JingleRole;
  /** Session id for the o= line. */
  sessionId?: string;
  sessionVersion?: number;
}

/** A Jingle description as an SDP written by `author`. */
export function jingleToSdp(desc: JingleDescription, opts: ToSdpOptions): string {
  if (desc.contents.length === 0) throw new JingleSdpError('the Jingle description has no contents');
  const lines: string[] = ['v=0', `o=- ${opts.sessionId ?? String(Date.now())} ${opts.sessionVersion ?? 2} IN IP4 0.0.0.0`, 's=-', 't=0 0'];
  if (desc.bundle && desc.bundle.length > 0) lines.push(`a=group:BUNDLE ${desc.bundle.join(' ')}`);
  lines.push('a=msid-semantic: WMS *');
  if (desc.contents.some((c) => c.rtp?.extmapAllowMixed)) lines.push('a=extmap-allow-mixed');
  for (const c of desc.contents) lines.push(...contentToMedia(c, opts.author));
  return `${lines.join('\r\n')}\r\n`;
}

function contentToMedia(c: JingleContent, author: JingleRole): string[] {
  const t = c.transport;
  const port = c.rejected ? 0 : 9;
  const out: string[] = [];
  if (!c.rtp) {
    out.push(`m=application ${port} UDP/DTLS/SCTP webrtc-datachannel`, 'c=IN IP4 0.0.0.0');
  } else {
    const pts = c.rtp.payloads.map((p) => p.id).join(' ');
    out.push(`m=${c.rtp.media} ${port} UDP/TLS/RTP/SAVPF ${pts}`, 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0');
  }
  if (t.ufrag) out.push(`a=ice-ufrag:${t.ufrag}`);
  if (t.pwd) out.push(`a=ice-pwd:${t.pwd}`);
  for (const f of t.fingerprints) {
    out.push(`a=fingerprint:${f.hash} ${f.value}`);
    if (f.setup) out.push(`a=setup:${f.setup}`);
  }
  for (const cand of t.candidates) out.push(`a=${candidateLine(cand)}`);
  out.push(`a=mid:${c.name}`);
  if (!c.rtp) {
    out.push(`a=sctp-port:${t.sctp?.port ?? 5000}`);
    if (t.sctp?.maxMessageSize) out.push(`a=max-message-size:${t.sctp.maxMessageSize}`);
    return out;
  }
  const r = c.rtp;
  for (const x of r.extensions) {
    const dir = x.senders && x.senders !== 'both' ? `/${directionOf(x.senders, author)}` : '';
    out.push(`a=extmap:${x.id}${dir} ${x.uri}`);
  }
  out.push(`a=${directionOf(c.senders, author)}`);
  const msid = r.sources.find((s) => s.msid)?.msid;
  if (msid) out.push(`a=msid:${msid}`);
  if (r.rtcpMux) out.push('a=rtcp-mux');
  if (r.rtcpRsize) out.push('a=rtcp-rsize');
  for (const p of r.payloads) {
    out.push(`a=rtpmap:${p.id} ${p.name}${p.clockrate !== undefined ? `/${p.clockrate}` : ''}${p.channels !== undefined && p.channels > 1 ? `/${p.channels}` : ''}`);
    for (const f of p.feedback) out.push(`a=rtcp-fb:${p.id} ${f.type}${f.subtype ? ` ${f.subtype}` : ''}`);
    if (p.parameters.length > 0) out.push(`a=fmtp:${p.id} ${p.parameters.map((x) => (x.name === '' ? x.value : `${x.name}=${x.value}`)).join(';')}`);
  }
  for (const f of r.feedback) out.push(`a=rtcp-fb:* ${f.type}${f.subtype ? ` ${f.subtype}` : ''}`);
  if (r.rids.length > 0) {
    const dir = r.ridsSentBy === author ? 'send' : 'recv';
    for (const rid of r.rids) out.push(`a=rid:${rid} ${dir}`);
    if (r.simulcast) out.push(`a=simulcast:${dir} ${r.rids.join(';')}`);
  }
  for (const g of r.ssrcGroups) out.push(`a=ssrc-group:${g.semantics} ${g.ssrcs.join(' ')}`);
  for (const s of r.sources) {
    const cname = s.cname ?? s.msid?.split(' ')[0] ?? `atrium-${s.ssrc}`;
    out.push(`a=ssrc:${s.ssrc} cname:${cname}`);
    if (s.msid) out.push(`a=ssrc:${s.ssrc} msid:${s.msid}`);
  }
  return out;
}

/** `candidate:…` as an SDP line value (without "a="). */
export function candidateLine(c: JingleCandidate): string {
  let s = `candidate:${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.ip} ${c.port} typ ${c.type}`;
  if (c.relAddr !== undefined) s += ` raddr ${c.relAddr}`;
  if (c.relPort !== undefined) s += ` rport ${c.relPort}`;
  if (c.tcptype !== undefined) s += ` tcptype ${c.tcptype}`;
  s += ` generation ${c.generation}`;
  return s;
}

/** Parses an ICE candidate attribute (`candidate:…`, with or without "a="); throws JingleSdpError. */
export function parseCandidateLine(line: string): JingleCandidate {
  const m = /^(?:a=)?candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)(.*)$/i.exec(line.trim());
  if (!m) throw new JingleSdpError(`"${line.slice(0, 80)}" is not an ICE candidate line`);
  const c: JingleCandidate = {
    foundation: m[1]!,
    component: Number(m[2]),
    protocol: m[3]!.toLowerCase(),
    priority: Number(m[4]),
    ip: m[5]!,
    port: Number(m[6]),
    type: m[7]!,
    generation: 0,
    id: '',
  };
  const rest = m[8]!.trim().split(/\s+/);
  for (let i = 0; i + 1 < rest.length; i += 2) {
    const [k, v] = [rest[i]!, rest[i + 1]!];
    if (k === 'raddr') c.relAddr = v;
    else if (k === 'rport') c.relPort = Number(v);
    else if (k === 'tcptype') c.tcptype = v;
    else if (k === 'generation') c.generation = Number(v);
    else if (k === 'network-id') c.network = Number(v);
  }
  c.id = `${c.foundation}-${c.component}-${c.protocol}`;
  return c;
}
