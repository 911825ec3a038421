// The real servers a cluster runs on, started for a test: Debian's
// redis-server (no persistence: a restart comes back empty, as a lost Redis
// does), HAProxy with deploy/haproxy/haproxy.cfg as shipped, coturn with
// deploy/coturn/turnserver.conf. Each is a child process the test stops;
// `ns` runs it inside a named network namespace (ip netns exec).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', '..');

export interface Service {
  process: ChildProcess;
  output(): string;
  /** SIGTERM (or `signal`), then waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Says which Debian package to install when a server is missing. */
export function requireBinary(file: string, pkg: string): void {
  if (!existsSync(file)) throw new Error(`${file} is missing: install Debian's ${pkg} (apt-get install ${pkg}; npm test does it when run as root)`);
}

export function spawnService(cmd: string, args: string[], opts: { ns?: string | undefined; env?: Record<string, string> } = {}): Service {
  const [file, argv] = opts.ns ? ['ip', ['netns', 'exec', opts.ns, cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-20000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-20000)));
  return {
    process: child,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForPort(host: string, port: number, what: string, service?: Service, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (service && (service.process.exitCode !== null || service.process.signalCode !== null)) throw new Error(`${what} exited before it listened:\n${service.output()}`);
    if (Date.now() > end) throw new Error(`${what} did not listen on ${host}:${port} within ${timeoutMs} ms${service ? `:\n${service.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** redis-server on host:port, without persistence. */
export async function startRedis(host: string, port: number, ns?: string): Promise<Service> {
  requireBinary('/usr/bin/redis-server', 'redis-server');
  const s = spawnService('/usr/bin/redis-server', ['--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', '/tmp'], { ns });
  await waitForPort(host, port, 'redis-server', s);
  return s;
}

/** A free-looking TCP port in a range unlikely to clash with other tests. */
export function randomPort(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

/** HAProxy with deploy/haproxy/haproxy.cfg as shipped; `env` gives the addresses (ATRIUM_LB_BIND, ATRIUM_LB_PEM, ATRIUM_NODE1…). */
export async function startHaproxy(env: Record<string, string>, ns?: string): Promise<Service> {
  requireBinary('/usr/sbin/haproxy', 'haproxy');
  const s = spawnService('/usr/sbin/haproxy', ['-db', '-f', join(REPO, 'deploy', 'haproxy', 'haproxy.cfg')], { ns, env });
  const bind = env.ATRIUM_LB_BIND!;
  const at = bind.lastIndexOf(':');
  await waitForPort(bind.slice(0, at) || '127.0.0.1', Number(bind.slice(at + 1)), 'haproxy', s);
  return s;
}

/** A self-signed certificate for `ip` (and its key), as one PEM file for HAProxy and the certificate alone for Node's NODE_EXTRA_CA_CERTS. */
export async function certificateFor(ip: string, dir: string): Promise<{ pem: string; cert: string }> {
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: ip }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip }] },
    ],
  } as Parameters<typeof generate>[1]);
  const { writeFile } = await import('node:fs/promises');
  const pem = join(dir, 'lb.pem');
  const cert = join(dir, 'lb-cert.pem');
  // selfsigned's PEM strings may lack a final newline: HAProxy reads no key glued to the certificate's END line.
  await writeFile(pem, `${pems.cert.trimEnd()}\n${pems.private.trimEnd()}\n`, { mode: 0o600 });
  await writeFile(cert, `${pems.cert.trimEnd()}\n`);
  return { pem, cert };
}
