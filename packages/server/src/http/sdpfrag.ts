// SDP fragments for trickle ICE and ICE restarts over HTTP PATCH (RFC 8840,
// as WHIP, RFC 9725 §4.3, and WHEP use them): reading a fragment, applying
// a restart to the SDP offer it changes, and making the answer's fragment.

export interface SdpFragment {
  ufrag: string | undefined;
  pwd: string | undefined;
  /** Candidates with the mid of the m-section they follow (undefined before any). */
  candidates: { candidate: string; mid: string | undefined }[];
  endOfCandidates: boolean;
}

export class SdpFragmentError extends Error {}

const lines = (sdp: string) => sdp.split(/\r?\n/).filter((l) => l.length > 0);

/** Reads an application/trickle-ice-sdpfrag body; throws SdpFragmentError on lines it cannot take. */
export function parseSdpFragment(body: string): SdpFragment {
  const frag: SdpFragment = { ufrag: undefined, pwd: undefined, candidates: [], endOfCandidates: false };
  let mid: string | undefined;
  for (const line of lines(body)) {
    if (!/^[a-z]=/.test(line)) throw new SdpFragmentError(`"${line.slice(0, 40)}" is not an SDP line (type=value)`);
    if (line.startsWith('m=')) mid = undefined;
    else if (line.startsWith('a=mid:')) mid = line.slice(6).trim();
    else if (line.startsWith('a=ice-ufrag:')) frag.ufrag = line.slice(12).trim();
    else if (line.startsWith('a=ice-pwd:')) frag.pwd = line.slice(10).trim();
    else if (line.startsWith('a=candidate:')) frag.candidates.push({ candidate: line.slice(2).trim(), mid });
    else if (line === 'a=end-of-candidates') frag.endOfCandidates = true;
    // other attributes (ice-options, group) are allowed and carry nothing for us
  }
  if ((frag.ufrag === undefined) !== (frag.pwd === undefined)) throw new SdpFragmentError('an ICE restart needs both a=ice-ufrag and a=ice-pwd');
  return frag;
}

/** The ICE username fragment an SDP uses (its first). */
export function iceUfrag(sdp: string): string | undefined {
  return /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
}

/**
 * The offer as it would be after an ICE restart: the fragment's credentials
 * in every section, the old candidates gone, the fragment's candidates in
 * the sections they name (the first section when they name none).
 */
export function restartOffer(offer: string, frag: SdpFragment): string {
  if (!frag.ufrag || !frag.pwd) throw new SdpFragmentError('an ICE restart needs a=ice-ufrag and a=ice-pwd');
  const out: string[] = [];
  let section = -1;
  let mid: string | undefined;
  const flush = () => {
    if (section < 0) return;
    for (const c of frag.candidates) if (c.mid === mid || (c.mid === undefined && section === 0)) out.push(`a=${c.candidate}`);
    if (frag.endOfCandidates && section === 0) out.push('a=end-of-candidates');
  };
  for (const line of lines(offer)) {
    if (line.startsWith('m=')) {
      flush();
      section++;
      mid = undefined;
    } else if (line.startsWith('a=mid:')) mid = line.slice(6).trim();
    if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('a=ice-ufrag:')) out.push(`a=ice-ufrag:${frag.ufrag}`);
    else if (line.startsWith('a=ice-pwd:')) out.push(`a=ice-pwd:${frag.pwd}`);
    else out.push(line);
  }
  flush();
  return `${out.join('\r\n')}\r\n`;
}

/** The fragment a restart is answered with: the answer's credentials, its first m-section and that section's candidates. */
export function answerFragment(answer: string): string {
  const out: string[] = [];
  let ufrag: string | undefined;
  let pwd: string | undefined;
  let section = -1;
  const media: string[] = [];
  for (const line of lines(answer)) {
    if (line.startsWith('m=')) {
      section++;
      if (section === 0) media.push(line);
      continue;
    }
    if (line.startsWith('a=ice-ufrag:')) ufrag ??= line.slice(12);
    else if (line.startsWith('a=ice-pwd:')) pwd ??= line.slice(10);
    else if (section === 0 && (line.startsWith('a=mid:') || line.startsWith('a=candidate:') || line === 'a=end-of-candidates')) media.push(line);
  }
  if (ufrag) out.push(`a=ice-ufrag:${ufrag}`);
  if (pwd) out.push(`a=ice-pwd:${pwd}`);
  out.push(...media);
  return `${out.join('\r\n')}\r\n`;
}
