// A small network of hosts for the multi-host cluster test, built from
// network namespaces and veth pairs (iproute2, as root): one namespace per
// host, each with one interface on a bridge that lives in a "switch"
// namespace. Nothing is connected to the machine's own network. The test
// file re-runs itself inside the namespace of the first client host (so its
// Chromium, its fetches and its assertions are a client on its own address)
// and starts every server in the namespace of its host.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { certificateFor } from './services.ts';

const MARK = 'ATRIUM_LAB';

/** The hosts of the lab and their addresses on 10.77.0.0/24. */
export const HOSTS = {
  lb: '10.77.0.10',
  n1: '10.77.0.11',
  n2: '10.77.0.12',
  n3: '10.77.0.13',
  redis: '10.77.0.20',
  c1: '10.77.0.101',
  c2: '10.77.0.102',
} as const;
export type Host = keyof typeof HOSTS;

/** Inside the lab: the namespace of each host, and a scratch directory shared with the outer run. */
export interface Lab {
  ns(host: Host): string;
  dir: string;
  /** The load balancer's certificate and key (one PEM file, for HAProxy); its certificate alone is trusted by this process (NODE_EXTRA_CA_CERTS). */
  lbPem: string;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error || r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.toString().trim()}`);
}

function build(prefix: string): void {
  const sw = `${prefix}-sw`;
  ip('netns', 'add', sw);
  ip('-n', sw, 'link', 'set', 'lo', 'up');
  ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', sw, 'link', 'set', 'br0', 'up');
  for (const [host, addr] of Object.entries(HOSTS)) {
    const ns = `${prefix}-${host}`;
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `s-${host}`, 'netns', sw);
    ip('-n', sw, 'link', 'set', `s-${host}`, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    // Every address is on the link: programs that look for "the" outgoing interface (WebRTC stacks do) find eth0.
    ip('-n', ns, 'route', 'add', 'default', 'dev', 'eth0');
  }
}

/** Ends whatever still runs in the lab's namespaces (only this test's processes live there), then removes them. */
function teardown(prefix: string): void {
  for (const host of [...Object.keys(HOSTS), 'sw']) {
    const ns = `${prefix}-${host}`;
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.trim().split(/\s+/).filter(Boolean) ?? [];
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

/** The lab this process runs in, or undefined in the outer run. */
export function currentLab(): Lab | undefined {
  const v = process.env[MARK];
  if (!v) return undefined;
  const { prefix, dir } = JSON.parse(v) as { prefix: string; dir: string };
  return { ns: (host) => `${prefix}-${host}`, dir, lbPem: join(dir, 'lb.pem') };
}

/**
 * In the outer run: one test that builds the lab, runs this file inside
 * host c1 and removes the lab; returns undefined. Inside: the lab.
 */
export function insideLab(fileUrl: string, options: { timeoutMs: number }): Lab | undefined {
  const lab = currentLab();
  if (lab) return lab;
  const file = fileURLToPath(fileUrl);
  test(`${file.split('/').at(-1)} on hosts made of network namespaces`, { timeout: options.timeoutMs + 30_000 }, async () => {
    if (process.getuid?.() !== 0) throw new Error('the multi-host cluster test builds network namespaces: run it as root (CI does), with iproute2 installed');
    const prefix = `atr${process.pid % 100000}`;
    const dir = mkdtempSync(join(tmpdir(), 'atrium-lab-'));
    chmodSync(dir, 0o755);
    teardown(prefix);
    // The test runner ends a file that overruns its bound with a signal, and `finally` would not run: clean up then too.
    const onSignal = (signal: NodeJS.Signals) => {
      teardown(prefix);
      rmSync(dir, { recursive: true, force: true });
      process.kill(process.pid, signal);
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    try {
      build(prefix);
      // Node reads NODE_EXTRA_CA_CERTS when it starts: the certificate is made before the inner run.
      const { cert } = await certificateFor(HOSTS.lb, dir);
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
        [MARK]: JSON.stringify({ prefix, dir }),
        NODE_EXTRA_CA_CERTS: cert,
      };
      const child = spawn('ip', ['netns', 'exec', `${prefix}-c1`, process.execPath, '--import', 'tsx', '--test', '--test-reporter=spec', `--test-timeout=${options.timeoutMs}`, file], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const collect = (chunk: Buffer) => {
        output += chunk.toString();
        process.stderr.write(chunk);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      if (code !== 0) throw new Error(`the tests inside the lab failed (exit ${code}):\n${output.slice(-8000)}`);
      if (Number(/pass (\d+)/.exec(output)?.[1] ?? 0) === 0) throw new Error(`no test ran inside the lab:\n${output.slice(-3000)}`);
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      teardown(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return undefined;
}

/** An executable that runs Debian's Chromium in another host's namespace (for playwright's executablePath). */
export function chromiumOn(lab: Lab, host: Host): string {
  const file = join(lab.dir, `chromium-${host}.sh`);
  writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${lab.ns(host)} /usr/bin/chromium "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}
