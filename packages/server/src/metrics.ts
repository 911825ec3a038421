// Prometheus metrics for /metrics. One registry per server instance so that
// tests can run several servers in one process.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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
  readonly members = new Gauge({
    name: 'atrium_group_members',
    help: 'Clients that have joined a group',
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'atrium_' });
  }
}
