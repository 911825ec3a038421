// Summary of the server's `--cpu-prof` profiles: self time per function and
// per area (SRTP, RTP serialisation, werift's sendRtp, UDP, our forwarding…),
// idle time left out.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Areas, first match wins (on "function url"). */
const AREAS: [string, RegExp][] = [
  ['idle', /^\(idle\) /],
  ['GC', /^\(garbage collector\) /],
  ['Atrium media engine', /packages\/server\/src\/media\//],
  ['Atrium other', /packages\/server\/src\//],
  // werift ships one bundle (lib/index.mjs), so its areas are told by function name.
  [
    'SRTP/SRTCP encrypt/decrypt (werift + node:crypto)',
    /^(createCipherBase|createDecipher\w*|Cipheriv|Decipheriv|update|final|setAAD|getAuthTag|setAuthTag|encrypt\w*|decrypt\w*|generateCounter|generateSrtpAuthTag|\w*[Hh]mac\w*|digest) /,
  ],
  ['UDP send/receive (node:dgram + kernel loopback)', /^(doSend|send|onMessage|afterSend|sendMessage) node:dgram|^\(program\) /],
  ['RTP/RTCP parse + serialize (werift)', /^(serialize\w*|deSerialize\w*|getBit|setBit|bufferWriter|bufferReader|RtpHeader|RtpPacket|BitWriter\w*|get \w+) werift/],
  [
    'werift sender/receiver per packet (sendRtp, SR bookkeeping, NACK buffer, TWCC)',
    /^(sendRtp|rtpPacketSent|ntpTime|uint\d+Add|handleRtpBySsrc|handleRtp\w*|onRtp\w*|addPacket|execute|(anonymous)) werift/,
  ],
  ['module loading (start-up, not per packet)', /^(compileSourceTextModule|makeSyncRequest|wrapSafe|\w*[Mm]odule\w*|load\w*|resolve\w*) /],
  ['SRTP/SRTCP (werift cipher + node:crypto)', /werift\/lib\/rtp\/src\/srtp|\/cipher\/|createCipheriv|Cipheriv|update |final |createHmac|Hmac/],
  ['RTP/RTCP parse + serialize (werift)', /werift\/lib\/rtp\/src\/(rtp|rtcp)\//],
  ['werift sender/receiver (sendRtp, onRtp, NACK, TWCC, SR)', /werift\/lib\/webrtc\/src\/media\//],
  ['werift DTLS/ICE transport', /werift\/lib\/(dtls|ice)\/|werift\/lib\/webrtc\/src\/transport\//],
  ['werift other', /werift\//],
  ['UDP send/receive (node:dgram, libuv)', /node:dgram|dgram|send |_handle|\(program\) /],
  ['node internals', /^.* node:/],
];

export async function summarise(dir: string, top = 25): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return `no .cpuprofile in ${dir} (the server writes them when it exits on SIGTERM)`;
  const self = new Map<string, number>();
  let total = 0;
  for (const file of files) {
    const p = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      const n = byId.get(p.samples[i]!)!;
      const dt = p.timeDeltas[i] ?? 0;
      const cf = n.callFrame;
      const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/packages\//, 'packages/')}:${cf.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    }
  }
  const busy = [...self.entries()].filter(([k]) => !k.startsWith('(idle)'));
  const busyTotal = busy.reduce((a, [, v]) => a + v, 0);
  const areas = new Map<string, number>();
  for (const [k, v] of busy) {
    const area = AREAS.find(([, re]) => re.test(k))?.[0] ?? 'other';
    areas.set(area, (areas.get(area) ?? 0) + v);
  }
  const pct = (v: number) => `${((v / busyTotal) * 100).toFixed(1).padStart(5)} %`;
  const lines = [
    `server CPU profile (${files.length} file(s), ${(total / 1e6).toFixed(1)} s sampled, ${(busyTotal / 1e6).toFixed(1)} s busy); self time, % of busy:`,
    '',
    'by area:',
    ...[...areas.entries()].sort((a, b) => b[1] - a[1]).map(([a, v]) => `  ${pct(v)}  ${a}`),
    '',
    `top ${top} functions:`,
    ...busy
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `  ${pct(v)}  ${k}`),
  ];
  return lines.join('\n');
}

// `node --import tsx bench/sfu/profile.ts DIR`: summarise existing profiles.
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await summarise(process.argv[2] ?? '.', Number(process.argv[3] ?? 25)));
}
