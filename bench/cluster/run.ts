// npm run bench:cluster -- [--clients N] [--groups G] [--messages M]
//                           [--concurrency C] [--layouts 1,3,3lb] [--json FILE]
// Exit status: 0 when every layout ran (whatever the figures), 1 when one
// could not be run (a server missing or not starting, clients not joining),
// 2 on bad arguments.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runBenchMain } from '../support/main.ts';
import { LAYOUTS, runClusterBench } from './bench.ts';
import { formatReport } from './report.ts';

const WATCHDOG_MS = 600_000;
const LAYOUT_NAMES: Record<string, (typeof LAYOUTS)[number]> = { '1': LAYOUTS[0]!, '3': LAYOUTS[1]!, '3lb': LAYOUTS[2]! };

const HELP = `Usage: npm run bench:cluster -- [options]   (needs redis-server and haproxy: apt-get install redis-server haproxy)

  --clients N       clients in all, spread over the groups (default 300, at most 3000)
  --groups G        groups (default 6)
  --messages M      chat messages per group (default 50)
  --concurrency C   joins in flight (default 32)
  --layouts LIST    comma-separated, from: 1 (one node), 3 (three nodes, clients
                    connect to the endpoint .status names), 3lb (three nodes,
                    clients connect to HAProxy's /ws and the node they reach
                    hands them to the owner); default 1,3,3lb
  --json FILE       also write every figure as JSON to FILE
`;

function usage(message: string): never {
  process.stderr.write(`bench:cluster: ${message}\n\n${HELP}`);
  process.exit(2);
}

function int(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min || x > max) usage(`--${name} must be an integer from ${min} to ${max}, not "${v}"`);
  return x;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        clients: { type: 'string' },
        groups: { type: 'string' },
        messages: { type: 'string' },
        concurrency: { type: 'string' },
        layouts: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const groups = int('groups', values.groups, 6, 1, 100);
  const clients = int('clients', values.clients, 300, groups, 3000);
  const layouts = (values.layouts ?? '1,3,3lb').split(',').map((n) => LAYOUT_NAMES[n.trim()] ?? usage(`unknown layout "${n}" in --layouts (1, 3 or 3lb)`));
  const result = await runClusterBench({
    clients,
    groups,
    messages: int('messages', values.messages, 50, 1, 10_000),
    concurrency: int('concurrency', values.concurrency, 32, 1, 512),
    layouts,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`\n${formatReport(result)}\n`);
  if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

runBenchMain('bench:cluster', WATCHDOG_MS, main);
