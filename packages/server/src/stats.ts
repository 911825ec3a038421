// Statistics of groups and their media, in two shapes: the admin API's
// `.stats` (Galène's format: groups -> clients -> up/down connections ->
// tracks) and Prometheus gauges, refreshed when /metrics is scraped.
import type { Gauge } from 'prom-client';
import type { Registry } from './core/registry.ts';
import type { PublicationStats } from './core/streams.ts';
import type { StreamStats, TrackStats } from './media/engine.ts';

export interface TrackReport {
  kind: string;
  codec?: string;
  layer?: string;
  bitrate: number;
  packets: number;
  /** Fraction of packets lost over the last interval, 0..1. */
  loss: number;
  /** Milliseconds. */
  jitter: number;
  audioLevel?: number;
  /** NACKed packets: up = asked of the publisher, down = asked by the subscriber. */
  nacks: number;
  /** Keyframe requests: up = sent to the publisher, down = received from the subscriber. */
  keyframeRequests: number;
  /** Down: packets resent in answer to NACKs. */
  retransmitted?: number;
  /** Down video: of those, sent on the RTX stream (RFC 4588). */
  retransmittedRtx?: number;
  /** Down video: second copies of retransmissions on a lossy link (not in `retransmitted`). */
  retransmittedRedundant?: number;
  /** Up video: packets recovered from the publisher's RTX stream (RFC 4588). */
  rtxRecovered?: number;
  /** Up video: RTX packets that repaired nothing (probes, late copies). */
  rtxUnneeded?: number;
  /** Down video: bytes of bandwidth-probe padding sent. */
  probeBytes?: number;
}

export interface ConnReport {
  id: string;
  label: string;
  state: string;
  /** Down: the down-link estimate, bit/s (media/quality/downlink.ts). */
  maxBitrate?: number;
  /** Down: bandwidth probes before up-switches and how they ended. */
  probes?: { probes: number; succeeded: number; failed: number };
  tracks: TrackReport[];
}

export interface ClientReport {
  id: string;
  username?: string;
  up?: ConnReport[];
  down?: ConnReport[];
}

export interface GroupReport {
  name: string;
  clients: ClientReport[];
}

function track(t: TrackStats): TrackReport {
  const r: TrackReport = {
    kind: t.kind,
    bitrate: Math.round(t.bitrate),
    packets: t.packets,
    loss: t.fractionLost,
    jitter: t.jitter * 1000,
    nacks: t.nacks,
    keyframeRequests: t.keyframeRequests,
  };
  if (t.retransmitted !== undefined) r.retransmitted = t.retransmitted;
  if (t.retransmittedRtx !== undefined) r.retransmittedRtx = t.retransmittedRtx;
  if (t.retransmittedRedundant !== undefined) r.retransmittedRedundant = t.retransmittedRedundant;
  if (t.rtxRecovered !== undefined) r.rtxRecovered = t.rtxRecovered;
  if (t.rtxUnneeded !== undefined) r.rtxUnneeded = t.rtxUnneeded;
  if (t.probeBytes !== undefined) r.probeBytes = t.probeBytes;
  if (t.codec) r.codec = t.codec;
  if (t.layer) r.layer = t.layer;
  if (t.audioLevel !== undefined) r.audioLevel = t.audioLevel;
  return r;
}

function conn(id: string, label: string, s: StreamStats): ConnReport {
  const r: ConnReport = { id, label, state: s.state, tracks: s.tracks.map(track) };
  if (s.availableBitrate !== undefined) r.maxBitrate = Math.round(s.availableBitrate);
  if (s.probes) r.probes = { ...s.probes };
  return r;
}

/** Every live group with its members and their streams, sorted by name and id. */
export async function collectStats(registry: Registry): Promise<GroupReport[]> {
  const groups = registry.groups().sort((a, b) => a.name.localeCompare(b.name));
  return Promise.all(
    groups.map(async (g) => {
      const pubs: PublicationStats[] = (await g.streams?.stats()) ?? [];
      const clients = [...g.allMembers()]
        .sort((a, b) => a.id.localeCompare(b.id))
        .map((m) => {
          const c: ClientReport = { id: m.id };
          if (m.username !== undefined) c.username = m.username;
          const up = pubs.filter((p) => p.owner === m.id).map((p) => conn(p.id, p.label, p.up));
          const down = pubs.flatMap((p) => p.downs.filter((d) => d.subscriber === m.id).map((d) => conn(p.id, p.label, d.stats)));
          if (up.length) c.up = up;
          if (down.length) c.down = down;
          return c;
        });
      return { name: g.name, clients };
    }),
  );
}

export interface MediaGauges {
  streams: Gauge<'group' | 'direction'>;
  bitrate: Gauge<'group' | 'direction' | 'kind'>;
  packets: Gauge<'group' | 'direction' | 'kind'>;
  lost: Gauge<'group' | 'direction' | 'kind'>;
  jitter: Gauge<'group' | 'direction' | 'kind'>;
  audioLevel: Gauge<'group' | 'client' | 'stream'>;
  nacks: Gauge<'group' | 'direction' | 'kind'>;
  retransmitted: Gauge<'group' | 'kind'>;
  retransmittedRtx: Gauge<'group' | 'kind'>;
  retransmittedRedundant: Gauge<'group' | 'kind'>;
  rtxRecovered: Gauge<'group'>;
  keyframeRequests: Gauge<'group' | 'direction' | 'kind'>;
  /** Down-link estimate per forwarded stream. */
  estimate: Gauge<'group' | 'client' | 'stream'>;
  /** Forwarded video tracks by the simulcast layer they get. */
  layers: Gauge<'group' | 'layer'>;
  probes: Gauge<'group' | 'outcome'>;
}

/** Sets the media gauges from a fresh collection (totals per group, direction and kind). */
export function updateMediaGauges(g: MediaGauges, reports: GroupReport[]): void {
  for (const gauge of Object.values(g)) gauge.reset();
  const worstJitter = new Map<string, { labels: { group: string; direction: string; kind: string }; seconds: number }>();
  for (const group of reports) {
    for (const client of group.clients) {
      for (const [direction, conns] of [
        ['up', client.up ?? []],
        ['down', client.down ?? []],
      ] as const) {
        for (const c of conns) {
          g.streams.inc({ group: group.name, direction });
          if (direction === 'down') {
            if (c.maxBitrate !== undefined) g.estimate.set({ group: group.name, client: client.id, stream: c.id }, c.maxBitrate);
            if (c.probes) {
              g.probes.inc({ group: group.name, outcome: 'succeeded' }, c.probes.succeeded);
              g.probes.inc({ group: group.name, outcome: 'failed' }, c.probes.failed);
            }
          }
          for (const t of c.tracks) {
            const labels = { group: group.name, direction, kind: t.kind };
            g.bitrate.inc(labels, t.bitrate);
            g.packets.inc(labels, t.packets);
            g.lost.inc(labels, Math.round(t.loss * t.packets));
            g.nacks.inc(labels, t.nacks);
            g.keyframeRequests.inc(labels, t.keyframeRequests);
            if (direction === 'up' && t.rtxRecovered !== undefined) g.rtxRecovered.inc({ group: group.name }, t.rtxRecovered);
            if (direction === 'down') {
              if (t.retransmitted !== undefined) g.retransmitted.inc({ group: group.name, kind: t.kind }, t.retransmitted);
              if (t.retransmittedRtx !== undefined) g.retransmittedRtx.inc({ group: group.name, kind: t.kind }, t.retransmittedRtx);
              if (t.retransmittedRedundant !== undefined) g.retransmittedRedundant.inc({ group: group.name, kind: t.kind }, t.retransmittedRedundant);
              if (t.kind === 'video') g.layers.inc({ group: group.name, layer: t.layer ?? '' });
            }
            const key = `${group.name}\u0000${direction}\u0000${t.kind}`;
            const worst = worstJitter.get(key);
            if (!worst || worst.seconds < t.jitter / 1000) worstJitter.set(key, { labels, seconds: t.jitter / 1000 });
            if (direction === 'up' && t.audioLevel !== undefined) g.audioLevel.set({ group: group.name, client: client.id, stream: c.id }, t.audioLevel);
          }
        }
      }
    }
  }
  for (const { labels, seconds } of worstJitter.values()) g.jitter.set(labels, seconds);
}
