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
  readonly forwarded = new Gauge({
    name: 'atrium_forwarded_connections',
    help: 'Connections piped to the node of the cluster that holds their group',
    registers: [this.registry],
  });
  readonly placements = new Counter({
    name: 'atrium_group_placements_total',
    help: 'Groups this node placed on a node of the cluster, by outcome (here, elsewhere, local: Redis unreachable)',
    labelNames: ['outcome'] as const,
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
    nacks: new Gauge({
      name: 'atrium_media_nacks',
      help: 'NACKed packets on live streams (up: asked of publishers, down: asked by subscribers), by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    retransmitted: new Gauge({
      name: 'atrium_media_retransmitted_packets',
      help: 'Packets resent to subscribers in answer to their NACKs, on live streams, by group and kind',
      labelNames: ['group', 'kind'] as const,
      registers: [this.registry],
    }),
    retransmittedRtx: new Gauge({
      name: 'atrium_media_retransmitted_rtx_packets',
      help: 'Of the packets resent to subscribers, those sent on an RTX stream (RFC 4588), on live streams, by group and kind',
      labelNames: ['group', 'kind'] as const,
      registers: [this.registry],
    }),
    retransmittedRedundant: new Gauge({
      name: 'atrium_media_retransmitted_redundant_packets',
      help: 'Second copies of retransmissions sent to subscribers whose link loses 4 % or more, on live streams, by group and kind',
      labelNames: ['group', 'kind'] as const,
      registers: [this.registry],
    }),
    rtxRecovered: new Gauge({
      name: 'atrium_media_rtx_recovered_packets',
      help: "Packets publishers resent on their RTX stream (RFC 4588) in answer to the server's NACKs, on live streams, by group",
      labelNames: ['group'] as const,
      registers: [this.registry],
    }),
    keyframeRequests: new Gauge({
      name: 'atrium_media_keyframe_requests',
      help: 'Keyframe requests on live streams (up: sent to publishers, down: received from subscribers), by group, direction and kind',
      labelNames: ['group', 'direction', 'kind'] as const,
      registers: [this.registry],
    }),
    estimate: new Gauge({
      name: 'atrium_media_down_estimate_bps',
      help: 'Estimated down-link bandwidth of each forwarded stream (transport-cc, probes), bits per second',
      labelNames: ['group', 'client', 'stream'] as const,
      registers: [this.registry],
    }),
    layers: new Gauge({
      name: 'atrium_media_down_layer_tracks',
      help: 'Forwarded video tracks by the simulcast layer (rid) each gets; empty rid: not simulcast',
      labelNames: ['group', 'layer'] as const,
      registers: [this.registry],
    }),
    probes: new Gauge({
      name: 'atrium_media_down_probes',
      help: 'Bandwidth probes before up-switches on live forwarded streams, by group and outcome',
      labelNames: ['group', 'outcome'] as const,
      registers: [this.registry],
    }),
  };

  /** Recording to disk (recording/recorder.ts). */
  readonly recordings = {
    active: new Gauge({
      name: 'atrium_recordings_active',
      help: 'Streams being recorded to disk now',
      registers: [this.registry],
    }),
    bytes: new Counter({
      name: 'atrium_recording_bytes_total',
      help: 'Bytes written to recording files',
      registers: [this.registry],
    }),
    files: new Counter({
      name: 'atrium_recording_files_total',
      help: 'Recording files finished (renamed from .part)',
      registers: [this.registry],
    }),
    errors: new Counter({
      name: 'atrium_recording_errors_total',
      help: 'Recordings stopped by an error, by kind (disk-full, permission, io, other)',
      labelNames: ['kind'] as const,
      registers: [this.registry],
    }),
  };

  /** WHIP publishers and WHEP players (http/whip.ts). */
  readonly sessions = {
    active: new Gauge({
      name: 'atrium_http_media_sessions',
      help: 'Live WHIP (ingest) and WHEP (playback) sessions, by protocol',
      labelNames: ['protocol'] as const,
      registers: [this.registry],
    }),
    total: new Counter({
      name: 'atrium_http_media_sessions_total',
      help: 'WHIP and WHEP sessions created, by protocol',
      labelNames: ['protocol'] as const,
      registers: [this.registry],
    }),
    refused: new Counter({
      name: 'atrium_http_media_refused_total',
      help: 'WHIP and WHEP requests refused, by protocol and HTTP status',
      labelNames: ['protocol', 'status'] as const,
      registers: [this.registry],
    }),
  };

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'atrium_' });
  }
}
