// Link impairment for media tests without netem (this kernel has no
// sch_netem): nftables rules in the test's own loopback-only network
// namespace drop UDP packets at random (`numgen random mod 100 < N`) or over
// a rate (`limit rate over … drop`, a policer: what a capped link does to a
// sender that ignores it), per direction and port. Every packet on loopback
// crosses the output hook once, so one chain there sees both directions.
//
// Only ever used inside the namespace insideLoopbackNetns() made: the rules
// live and die with it, nothing touches the host's ruleset.
import { spawnSync } from 'node:child_process';
import { inLoopbackNetns } from './netns.ts';

const TABLE = 'atrium_impair';

/** One impairment of the packets to (`dport`) or from (`sport`) a UDP port. */
export interface LinkRule {
  /** The UDP port (on 127.0.0.1) whose packets are impaired. */
  port: number;
  /** 'to': packets sent to the port (its down-link); 'from': packets it sends (its up-link). */
  direction: 'to' | 'from';
  /** Random loss, percent (0..100). */
  lossPercent?: number;
  /** A cap: packets over this rate (kbit/s) are dropped. */
  rateKbit?: number;
}

/** Why impairment cannot work here (a sentence saying how to fix it), or undefined when it can. */
export function impairmentUnavailable(): string | undefined {
  if (!inLoopbackNetns()) return "impairment rules are only installed inside the test's loopback-only network namespace";
  const probe = spawnSync('nft', ['--version'], { stdio: 'pipe' });
  if (probe.error || probe.status !== 0) return 'nftables is not installed (`nft` not found): install it with `apt-get install nftables` (npm test does when run as root)';
  const table = spawnSync('nft', ['-f', '-'], { input: `add table inet ${TABLE}\ndelete table inet ${TABLE}\n`, stdio: 'pipe' });
  if (table.status !== 0) return `nft cannot create a table in this namespace (${table.stderr.toString().trim()}): run the tests as root (or with CAP_NET_ADMIN)`;
  return undefined;
}

function nft(script: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, stdio: 'pipe' });
  if (r.error || r.status !== 0) throw new Error(`nft rejected the impairment rules (${r.error?.message ?? r.stderr.toString().trim()}):\n${script}`);
}

/** The nft rule text of one LinkRule (with a counter, read back by dropped()). */
export function ruleText(rule: LinkRule): string[] {
  if (!Number.isInteger(rule.port) || rule.port <= 0 || rule.port > 65535) throw new Error(`impairment: ${rule.port} is not a UDP port`);
  const match = `udp ${rule.direction === 'to' ? 'dport' : 'sport'} ${rule.port}`;
  const out: string[] = [];
  if (rule.lossPercent !== undefined && rule.lossPercent > 0) {
    const n = Math.round(rule.lossPercent);
    if (n > 100) throw new Error(`impairment: loss ${rule.lossPercent}% is over 100%`);
    out.push(`${match} numgen random mod 100 < ${n} counter drop`);
  }
  if (rule.rateKbit !== undefined) {
    const bytes = Math.max(1, Math.round((rule.rateKbit * 1000) / 8));
    // a burst of ~100 ms (at least a few full packets): a shallow link buffer
    const burst = Math.max(4500, Math.round(bytes / 10));
    out.push(`${match} limit rate over ${bytes} bytes/second burst ${burst} bytes counter drop`);
  }
  return out;
}

/**
 * Named sets of rules (one chain each), replaced or cleared as a whole:
 * `set('sub-b', [{ port, direction: 'to', rateKbit: 300 }])`, later `clear('sub-b')`.
 */
export class Impairments {
  #chains = new Set<string>();
  #installed = false;

  #ensureTable(): void {
    if (this.#installed) return;
    nft(`table inet ${TABLE} {\n  chain output { type filter hook output priority 0; policy accept; }\n}\n`);
    this.#installed = true;
  }

  /** Replaces the rules named `name` by `rules` (an empty list clears them). */
  set(name: string, rules: LinkRule[]): void {
    if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`impairment: "${name}" is not a chain name (a-z, 0-9, _)`);
    this.#ensureTable();
    const lines: string[] = [];
    if (!this.#chains.has(name)) {
      lines.push(`add chain inet ${TABLE} ${name}`, `add rule inet ${TABLE} output jump ${name}`);
      this.#chains.add(name);
    }
    lines.push(`flush chain inet ${TABLE} ${name}`);
    for (const r of rules) for (const text of ruleText(r)) lines.push(`add rule inet ${TABLE} ${name} ${text}`);
    nft(`${lines.join('\n')}\n`);
  }

  clear(name: string): void {
    if (this.#chains.has(name)) this.set(name, []);
  }

  /** Packets dropped so far by the rules named `name` (their counters). */
  dropped(name: string): number {
    if (!this.#chains.has(name)) return 0;
    const r = spawnSync('nft', ['list', 'chain', 'inet', TABLE, name], { stdio: 'pipe', encoding: 'utf8' });
    let n = 0;
    for (const m of r.stdout.matchAll(/counter packets (\d+)/g)) n += Number(m[1]);
    return n;
  }

  /** Removes every rule (the table). */
  close(): void {
    if (!this.#installed) return;
    spawnSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'pipe' });
    this.#installed = false;
    this.#chains.clear();
  }
}
