// bench/quality: the impaired-link scenarios of
// packages/server/test/media/impaired.test.ts (5 % and 10 % loss on one
// subscriber, a 300 kbit/s cap on one subscriber's down-link, a 400 kbit/s
// cap on the publisher's up-link; nftables in a loopback-only namespace,
// real Chromium), run with 20-s measurement windows, printed as figures:
// frame rates, freezes, switch times, estimate against the cap.
//   npm run bench:quality             one run
//   npm run bench:quality -- --runs 3
// A benchmark, not a test: a run whose assertions fail still prints what it
// measured and exits 0; 1 when no figures came out at all.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 1;
if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
  console.error('bench:quality: --runs takes a whole number from 1 to 20');
  process.exit(2);
}

interface Window {
  fpsA: number;
  fpsB: number;
  freezesA: number;
  frozenA: number;
  frozenB: number;
  nacksA: number;
  rtxA?: number;
  widthA: number;
  cleanFpsA: number;
  cleanFpsB: number;
  windowS: number;
  dropped: number;
}
interface Figures {
  loss5?: Window;
  loss10?: Window;
  cap?: {
    downMs: number;
    upMs: number;
    estimateUnderCap: number;
    capBps: number;
    probes?: { probes: number; succeeded: number; failed: number };
    otherLeftHigh: number;
    onCap?: { windowS: number; fpsA: number; fpsB: number; freezesA: number; frozenA: number; sentKbps: number; receivedKbps: number };
  };
  uplink?: { beforeKbps: number; afterKbps: number; dropMs: number; publisherEstimate: number; capBps: number; layers?: string[] };
  uplinkLoss?: { windowS?: number; resentByBrowser: number; nackedByServer: number; rtxRecovered: number; rtxUnneeded: number; dropped: number };
  uplinkWindow?: { windowS: number; fpsA: number; fpsB: number; freezes: number; frozen: number; widths: number[]; sentKbps: number };
  loadavg: number[];
}

function once(): Promise<{ figures?: Figures; passed: boolean; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', 'packages/server/test/media/impaired.test.ts'], {
      cwd: root,
      env: { ...process.env, ATRIUM_QUALITY_BENCH: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const take = (c: Buffer) => {
      out += c.toString();
      if (out.length > 2_000_000) out = out.slice(-1_000_000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.includes('QUALITY-FIGURES '));
      const figures = line ? (JSON.parse(line.slice(line.indexOf('QUALITY-FIGURES ') + 16)) as Figures) : undefined;
      resolve({ figures, passed: code === 0, tail: out.slice(-3000) });
    });
  });
}

const f1 = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(1));
console.log(
  `bench:quality: ${runs} run(s); load average before: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
let any = false;
for (let i = 1; i <= runs; i++) {
  const r = await once();
  if (!r.figures) {
    console.log(`run ${i}: no figures (the test did not get that far):\n${r.tail}`);
    continue;
  }
  any = true;
  const f = r.figures;
  console.log(`\nrun ${i} (${r.passed ? 'assertions passed' : 'assertions FAILED'}; load average after: ${f.loadavg.map((l) => l.toFixed(1)).join(' ')})`);
  for (const key of ['loss5', 'loss10'] as const) {
    const w = f[key];
    if (!w) continue;
    console.log(
      `  ${key === 'loss5' ? ' 5' : '10'} % loss both ways, ${w.windowS} s: impaired ${f1(w.fpsA)} fps = ${((100 * w.fpsA) / Math.max(0.1, w.fpsB)).toFixed(0)} % of the clean subscriber (${f1(w.fpsB)} fps; ` +
        `${f1(w.cleanFpsA)} fps before the loss), ${w.freezesA} freezes, ${w.frozenA.toFixed(2)} s frozen (clean one: ${w.frozenB.toFixed(2)} s), ${w.nacksA} NACKs sent, ${w.rtxA ?? '-'} RTX packets received, ${w.widthA} px`,
    );
  }
  if (f.cap) {
    const p = f.cap.probes;
    console.log(
      `  300 kbit/s down-link cap: low layer after ${(f.cap.downMs / 1000).toFixed(1)} s, estimate under the cap ${Math.round(f.cap.estimateUnderCap / 1000)} kbit/s ` +
        `(${((100 * f.cap.estimateUnderCap) / f.cap.capBps).toFixed(0)} % of the cap), back to high ${(f.cap.upMs / 1000).toFixed(1)} s after the cap was lifted; ` +
        `probes ${p?.probes ?? '-'} (${p?.failed ?? '-'} failed, ${p?.succeeded ?? '-'} succeeded); the other subscriber off the high layer in ${f.cap.otherLeftHigh} samples`,
    );
  }
  const c = f.cap?.onCap;
  if (c) {
    console.log(
      `      on the cap, ${c.windowS} s: capped subscriber ${f1(c.fpsA)} fps (other ${f1(c.fpsB)} fps), ${c.freezesA} freezes, ${c.frozenA.toFixed(2)} s frozen; ` +
        `server sent it ${Math.round(c.sentKbps)} kbit/s (${((100 * c.sentKbps) / (f.cap!.capBps / 1000)).toFixed(0)} % of the cap, payload incl. audio and probes), its browser received ${Math.round(c.receivedKbps)} kbit/s of video payload`,
    );
  }
  const l = f.uplinkLoss;
  if (l) {
    console.log(
      `  10 % loss on the publisher's up-link${l.windowS ? `, ${l.windowS} s` : ''}: the server NACKed ${l.nackedByServer} packets, the publisher resent ${l.resentByBrowser} (its retransmittedPacketsSent), ` +
        `the server recovered ${l.rtxRecovered} from its RTX stream (${l.rtxUnneeded} RTX packets repaired nothing); ${l.dropped} packets dropped`,
    );
  }
  if (f.uplink) {
    console.log(
      `  400 kbit/s up-link cap: the publisher's high layer ${Math.round(f.uplink.beforeKbps)} -> ${Math.round(f.uplink.afterKbps)} kbit/s after ${(f.uplink.dropMs / 1000).toFixed(1)} s, ` +
        `its estimate ${Math.round(f.uplink.publisherEstimate / 1000)} kbit/s (${((100 * f.uplink.publisherEstimate) / f.uplink.capBps).toFixed(0)} % of the cap); subscribers on layers ${f.uplink.layers?.join(', ') ?? '-'}`,
    );
  }
  const u = f.uplinkWindow;
  if (u) {
    console.log(
      `      then ${u.windowS} s: subscribers ${f1(u.fpsA)} and ${f1(u.fpsB)} fps at ${u.widths.join(' and ')} px, ${u.freezes} freezes, ${u.frozen.toFixed(2)} s frozen (both together); ` +
        `the publisher sent ${Math.round(u.sentKbps)} kbit/s of video payload (${((100 * u.sentKbps) / (f.uplink!.capBps / 1000)).toFixed(0)} % of the cap)`,
    );
  }
}
process.exit(any ? 0 : 1);
