// Prometheus metrics for /metrics. One registry per server instance so that
// tests can run several servers in one process.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { MediaGauges } from './stats.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly messages = new Counter({
    name: 'atrium_messages_total',
    help: 'Protocol messages received, by dialect and message type',
    labelNames: ['dialect', 'type'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'atrium_errors_total',
    help: 'Errors reported to clients or closes for abuse, by dialect and kind',
    labelNames: ['dialect', 'kind'] as const,
    registers: [this.registry],
  });
  readonly clients = new Gauge({
    name: 'atrium_connected_clients',
    help: 'Open protocol connections, by dialect',
    labelNames: ['dialect'] as const,
    registers: [this.registry],
  });
  readonly groups = new Gauge({
    name: 'atrium_groups',
    help: 'Live groups (with members or chat history)',
    registers: [this.registry],
  });
  readonly loginFailures = new Counter({
    name: 'atrium_login_failures_total',
    help: 'Failed logins (wrong password or bad token), by way in (galene, camus, rtcpool, admin)',
    labelNames: ['via'] as const,
    registers: [this.registry],
  });
  readonly loginThrottled = new Counter({
    name: 'atrium_login_throttled_total',
    help: 'Logins refused unchecked because the user or address must wait after failures, by way in',
    labelNames: ['via'] as const,
    registers: [this.registry],
  });
  readonly members = new Gauge({
    name: 'atrium_group_members',
    help: 'Clients that have joined a group',
    registers: [this.registry],
  });

  readonly media: MediaGauges = {
    streams: new Gauge({
      name: 'atrium_media_streams',
      help: 'Media streams, by group and direction (up: published, down: forwarded)',
      labelNames: ['group', 'direction'] as const,
      registers: [this.registry],
    }),
    bitrate: new Gauge({
      name: 'atrium_media_bitrate_bps',
      help: 'Media bitrate in bits per second, summed by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    packets: new Gauge({
      name: 'atrium_media_packets',
      help: 'RTP packets so far on live streams, by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    lost: new Gauge({
      name: 'atrium_media_packets_lost',
      help: 'RTP packets lost over the last interval, by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    jitter: new Gauge({
      name: 'atrium_media_jitter_seconds',
      help: 'Largest interarrival jitter among tracks, by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    audioLevel: new Gauge({
      name: 'atrium_media_audio_level',
      help: 'Audio level (0..1) of each published audio track, for speaker detection',
      labelNames: ['group', 'client', 'stream'] as const,
      registers: [this.registry],
    }),
  };

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'atrium_' });
  }
}
