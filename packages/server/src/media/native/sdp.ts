// What the native engine reads from SDP besides what werift negotiates: per
// m-line its mid, simulcast rids (in the order the publisher lists them,
// highest first), the SSRCs it signals (and each one's RTX repair stream,
// RFC 4588, from the FID groups), and the header extension ids of the bundle.

export interface MediaSection {
  mid: string;
  kind: string;
  rids: string[];
  /** Primary SSRCs, one per encoding, in order (empty when not signalled). */
  ssrcs: number[];
  /** The RTX SSRC repairing each of `ssrcs` (0: none signalled). */
  rtxSsrcs: number[];
  /** URI -> id. */
  extensions: Map<string, number>;
}

export const EXT = {
  mid: 'urn:ietf:params:rtp-hdrext:sdes:mid',
  rid: 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  rrid: 'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
  twcc: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  audioLevel: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
} as const;

export function mediaSections(sdp: string): MediaSection[] {
  const out: MediaSection[] = [];
  const parts = sdp.split(/\r?\n(?=m=)/).slice(1);
  for (const part of parts) {
    const lines = part.split(/\r?\n/);
    const kind = /^m=(\w+)/.exec(lines[0] ?? '')?.[1] ?? '';
    let mid = '';
    const rids: string[] = [];
    let order: string[] | undefined;
    const ssrcs: number[] = [];
    const repair = new Map<number, number>();
    let sim: number[] | undefined;
    const extensions = new Map<string, number>();
    for (const l of lines) {
      let m: RegExpExecArray | null;
      if ((m = /^a=mid:(\S+)/.exec(l))) mid = m[1]!;
      else if ((m = /^a=rid:(\S+) send\b/.exec(l))) rids.push(m[1]!);
      else if ((m = /^a=simulcast:send (\S+)/.exec(l))) order = m[1]!.split(';').map((r) => r.split(',')[0]!.replace(/^~/, ''));
      else if ((m = /^a=ssrc:(\d+) /.exec(l))) {
        const s = Number(m[1]);
        if (!ssrcs.includes(s)) ssrcs.push(s);
      } else if ((m = /^a=ssrc-group:FID (\d+) (\d+)/.exec(l))) repair.set(Number(m[1]), Number(m[2]));
      else if ((m = /^a=ssrc-group:SIM ((?:\d+ ?)+)/.exec(l))) sim = m[1]!.trim().split(' ').map(Number);
      else if ((m = /^a=extmap:(\d+)(?:\/\w+)? (\S+)/.exec(l))) extensions.set(m[2]!, Number(m[1]));
    }
    const orderedRids = order ? order.filter((r) => rids.includes(r)) : rids;
    const repairs = new Set(repair.values());
    const primary = sim ?? ssrcs.filter((s) => !repairs.has(s));
    out.push({ mid, kind, rids: orderedRids, ssrcs: primary, rtxSsrcs: primary.map((s) => repair.get(s) ?? 0), extensions });
  }
  return out;
}

/** The id of an extension in the first m-line that has it (a bundle uses one id per URI), or 0. */
export function extensionId(sections: MediaSection[], uri: string): number {
  for (const s of sections) {
    const id = s.extensions.get(uri);
    if (id !== undefined) return id;
  }
  return 0;
}
