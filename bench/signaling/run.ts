// npm run bench:signaling -- [--clients N] [--messages M] [--concurrency C]
//                             [--interval MS] [--json FILE] [--server-cpu-prof DIR]
// Exit status: 0 when the run completed (whether the bars passed or not),
// 1 when it could not be run (server did not start, clients could not join),
// 2 on bad arguments.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runBenchMain } from '../support/main.ts';
import { runSignalingBench } from './bench.ts';
import { formatReport } from './report.ts';

const MAX_CLIENTS = 2000;
/** The run stops itself well before this; the watchdog is for bugs. */
const WATCHDOG_MS = 150_000;

const HELP = `Usage: npm run bench:signaling -- [options]

  --clients N            clients joining one group (default 2000, at most ${MAX_CLIENTS})
  --messages M           chat messages sent afterwards (default 20)
  --concurrency C        connection attempts in flight (default 64)
  --interval MS          least time between chat messages (default 200)
  --json FILE            also write every figure as JSON to FILE
  --server-cpu-prof DIR  run the server with --cpu-prof and write its profile to DIR
`;

function positiveInt(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) usage(`--${name} must be an integer >= ${min}, not "${v}"`);
  return x;
}

function usage(message: string): never {
  process.stderr.write(`bench:signaling: ${message}\n\n${HELP}`);
  process.exit(2);
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        clients: { type: 'string' },
        messages: { type: 'string' },
        concurrency: { type: 'string' },
        interval: { type: 'string' },
        json: { type: 'string' },
        'server-cpu-prof': { type: 'string' },
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
  const clients = positiveInt('clients', values.clients, 2000);
  if (clients > MAX_CLIENTS) usage(`--clients is at most ${MAX_CLIENTS}`);
  const prof = values['server-cpu-prof'];

  const result = await runSignalingBench({
    clients,
    messages: positiveInt('messages', values.messages, 20, 0),
    concurrency: positiveInt('concurrency', values.concurrency, 64),
    messageIntervalMs: positiveInt('interval', values.interval, 200, 0),
    serverNodeArgs: prof ? ['--cpu-prof', `--cpu-prof-dir=${resolve(prof)}`] : undefined,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`\n${formatReport(result)}\n`);
  if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 2)}\n`);
  if (prof) process.stdout.write(`server CPU profile written to ${resolve(prof)}\n`);
  return 0;
}

runBenchMain('bench:signaling', WATCHDOG_MS, main);
