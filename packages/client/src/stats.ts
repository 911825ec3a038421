// Stream statistics as Galène's client computes them: the data rate of each
// sent track (bits per second) for up-streams, the audio energy (mean square
// of the amplitude, per second) for down-streams. `computeStats` is pure;
// `sampleStats` reads the samples from a peer connection.

export interface OutboundTrackStats {
  timestamp: number;
  bytesSent: number;
  /** Bits per second since the previous sample; absent on the first. */
  rate?: number;
}

export interface InboundTrackStats {
  timestamp: number;
  totalAudioEnergy: number;
  /** Audio energy per second since the previous sample; absent on the first. */
  audioEnergy?: number;
}

export interface TrackStats {
  'outbound-rtp'?: OutboundTrackStats;
  'inbound-rtp'?: InboundTrackStats;
}

/**
 * Keyed like Galène: `<track id>-<ssrc>` for sent tracks (one entry per
 * simulcast layer), `<track id>` for received audio tracks.
 */
export type StreamStats = Record<string, TrackStats>;

export type StatsSample = { direction: 'outbound'; key: string; timestamp: number; bytesSent: number } | { direction: 'inbound'; key: string; timestamp: number; totalAudioEnergy: number };

/** New statistics from fresh samples and the previous statistics. */
export function computeStats(previous: StreamStats, samples: readonly StatsSample[]): StreamStats {
  const out: StreamStats = {};
  for (const s of samples) {
    const entry = (out[s.key] ??= {});
    if (s.direction === 'outbound') {
      const o: OutboundTrackStats = { timestamp: s.timestamp, bytesSent: s.bytesSent };
      const old = previous[s.key]?.['outbound-rtp'];
      if (old && s.timestamp > old.timestamp) o.rate = ((s.bytesSent - old.bytesSent) * 8 * 1000) / (s.timestamp - old.timestamp);
      entry['outbound-rtp'] = o;
    } else {
      const i: InboundTrackStats = { timestamp: s.timestamp, totalAudioEnergy: s.totalAudioEnergy };
      const old = previous[s.key]?.['inbound-rtp'];
      if (old && s.timestamp > old.timestamp) i.audioEnergy = ((s.totalAudioEnergy - old.totalAudioEnergy) * 1000) / (s.timestamp - old.timestamp);
      entry['inbound-rtp'] = i;
    }
  }
  return out;
}

/** Reads the samples `computeStats` needs from every transceiver of `pc`. */
export async function sampleStats(pc: RTCPeerConnection): Promise<StatsSample[]> {
  const samples: StatsSample[] = [];
  for (const t of pc.getTransceivers()) {
    const sent = t.sender.track;
    if (sent) {
      const report = await t.sender.getStats().catch(() => undefined);
      report?.forEach((r: { type?: string; ssrc?: number; timestamp?: number; bytesSent?: number }) => {
        if (r.type === 'outbound-rtp' && typeof r.bytesSent === 'number' && typeof r.timestamp === 'number') {
          samples.push({ direction: 'outbound', key: `${sent.id}-${r.ssrc ?? ''}`, timestamp: r.timestamp, bytesSent: r.bytesSent });
        }
      });
    }
    const received = t.receiver.track;
    // A receiver always has a track; only down-streams receive anything.
    if (received && t.currentDirection !== 'sendonly' && t.currentDirection !== 'inactive') {
      const report = await t.receiver.getStats().catch(() => undefined);
      report?.forEach((r: { type?: string; timestamp?: number; totalAudioEnergy?: number }) => {
        if (r.type === 'inbound-rtp' && typeof r.totalAudioEnergy === 'number' && typeof r.timestamp === 'number') {
          samples.push({ direction: 'inbound', key: received.id, timestamp: r.timestamp, totalAudioEnergy: r.totalAudioEnergy });
        }
      });
    }
  }
  return samples;
}
