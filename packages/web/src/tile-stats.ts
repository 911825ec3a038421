// What the stats overlay of a tile shows, read from the browser's own
// getStats() of the stream's peer connection: the picture (size, frame rate,
// frames, freezes), the link (rate, estimated bandwidth, loss, jitter) and
// the repairs (NACKs, retransmitted packets, keyframe requests). These are
// the figures the server keeps per stream too (admin `.stats`, /metrics),
// seen from this side: for a stream we receive, what we asked for and got;
// for one we send, what the server asked of us and what the browser chose.

/** One tile's figures; a field is absent when the browser does not report it. */
export interface TileStats {
  /** 'down' for a stream we receive, 'up' for one we send. */
  direction: 'down' | 'up';
  framesDecoded?: number;
  fps?: number;
  width?: number;
  height?: number;
  /** All media bytes of the stream over the last interval. */
  kbps?: number;
  /** The browser's bandwidth estimate for the link (availableOutgoingBitrate when sending, availableIncomingBitrate when receiving). */
  estimateKbps?: number;
  codec?: string;
  packetsLost?: number;
  /** Seconds. */
  jitter?: number;
  /** NACKs we sent (down) or that the server sent us (up). */
  nacks?: number;
  /** Retransmitted packets received (down) or sent (up). */
  retransmitted?: number;
  /** PLI + FIR: keyframe requests we sent (down) or received (up). */
  keyframeRequests?: number;
  freezes?: number;
  /** Seconds frozen in total. */
  frozenSeconds?: number;
  /** Simulcast layers the browser is sending, highest first, e.g. ['h 720', 'm 360']. */
  layers?: string[];
  /** Why the browser sends less than it could ('bandwidth', 'cpu'), when it does. */
  limitedBy?: string;
}

/** What the next reading needs of this one (rates are differences). */
export interface TileStatsMark {
  bytes: number;
  at: number;
}

type Entry = Record<string, unknown>;
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const add = (a: number | undefined, b: unknown): number | undefined => {
  const n = num(b);
  return n === undefined ? a : (a ?? 0) + n;
};

/** Reads one tile's figures from a stats report; `mark` is the previous reading's, `now` in milliseconds. */
export function readTileStats(report: RTCStatsReport, direction: 'down' | 'up', mark: TileStatsMark | undefined, now: number): { stats: TileStats; mark: TileStatsMark } {
  const entries: Entry[] = [];
  report.forEach((r: Entry) => {
    entries.push(r);
  });
  const codecs = new Map<string, string>();
  for (const r of entries) if (r.type === 'codec') codecs.set(String(r.id), String(r.mimeType ?? '').replace(/^(video|audio)\//, ''));

  const st: TileStats = { direction };
  let bytes = 0;
  const layers: { rid: string; height: number }[] = [];
  for (const r of entries) {
    if (r.type === 'inbound-rtp') bytes += num(r.bytesReceived) ?? 0;
    if (r.type === 'outbound-rtp') bytes += num(r.bytesSent) ?? 0;
    if (r.type === 'candidate-pair' && (r.nominated === true || r.selected === true) && r.state === 'succeeded') {
      const estimate = num(direction === 'up' ? r.availableOutgoingBitrate : r.availableIncomingBitrate);
      if (estimate !== undefined) st.estimateKbps = Math.round(estimate / 1000);
    }
    if ((r.kind ?? r.mediaType) !== 'video') continue;
    if (r.type === 'inbound-rtp') {
      st.framesDecoded = num(r.framesDecoded) ?? 0;
      st.packetsLost = num(r.packetsLost);
      st.jitter = num(r.jitter);
      st.nacks = num(r.nackCount);
      st.retransmitted = num(r.retransmittedPacketsReceived);
      st.keyframeRequests = add(num(r.pliCount), r.firCount);
      st.freezes = num(r.freezeCount);
      st.frozenSeconds = num(r.totalFreezesDuration);
      st.width = num(r.frameWidth);
      st.height = num(r.frameHeight);
      st.fps = num(r.framesPerSecond);
      if (typeof r.codecId === 'string' && codecs.has(r.codecId)) st.codec = codecs.get(r.codecId)!;
    }
    if (r.type === 'outbound-rtp') {
      st.nacks = add(st.nacks, r.nackCount);
      st.retransmitted = add(st.retransmitted, r.retransmittedPacketsSent);
      st.keyframeRequests = add(add(st.keyframeRequests, r.pliCount), r.firCount);
      const reason = r.qualityLimitationReason;
      if (typeof reason === 'string' && reason !== 'none') st.limitedBy = reason;
      const height = num(r.frameHeight);
      // A layer the browser stopped sending (a capped uplink) reports no frame size or is inactive.
      if (height !== undefined && r.active !== false) layers.push({ rid: typeof r.rid === 'string' ? r.rid : '', height });
      if (height !== undefined && height > (st.height ?? 0)) {
        st.width = num(r.frameWidth);
        st.height = height;
        st.fps = num(r.framesPerSecond);
        if (typeof r.codecId === 'string' && codecs.has(r.codecId)) st.codec = codecs.get(r.codecId)!;
      }
    }
  }
  if (layers.length > 0) st.layers = layers.sort((a, b) => b.height - a.height).map((l) => (l.rid ? `${l.rid} ${l.height}` : String(l.height)));
  if (mark && now > mark.at && bytes >= mark.bytes) st.kbps = Math.round(((bytes - mark.bytes) * 8) / (now - mark.at));
  return { stats: st, mark: { bytes, at: now } };
}
