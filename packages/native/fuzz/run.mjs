#!/usr/bin/env node
// Fuzzes the addon's parsers with libFuzzer under AddressSanitizer and
// UndefinedBehaviorSanitizer (leak checks on): one target per parser family
// (fuzz/rtp.cc, rtcp.cc, stun.cc, srtp.cc), each built with clang++ from the
// same sources as the addon, started from seeds written here (valid packets
// of each kind) and a corpus kept in build/fuzz/corpus/ between runs.
//
//   node fuzz/run.mjs                  2 s per target (what `npm test` runs)
//   node fuzz/run.mjs --seconds 300    the long run (`npm run bench:fuzz`)
//   node fuzz/run.mjs --targets rtp,srtp
//
// Prints one line per target (executions, corpus size); on a crash or leak,
// the input that caused it (build/fuzz/crashes/) and how to replay it, and
// exits 1. Exits 2 with a sentence saying what to install when clang++ with
// libFuzzer is not there.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const out = join(root, 'build', 'fuzz');
export const TARGETS = ['rtp', 'rtcp', 'stun', 'srtp', 'plane'];
/** Exit status when the tool chain is missing (the test reports a skip). */
export const NO_TOOLCHAIN = 2;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function findClang() {
  for (const c of ['clang++', 'clang++-19', 'clang++-18', 'clang++-17', 'clang++-16', 'clang++-15', 'clang++-14']) {
    if (spawnSync('sh', ['-c', `command -v ${c}`]).status === 0) return c;
  }
  return undefined;
}

/**
 * OpenSSL for srtp.cc: the system's headers and libcrypto when installed
 * (Debian libssl-dev), else Node's headers (the addon's) with the system's
 * libcrypto.so.3 — the same OpenSSL 3 API either way.
 */
function opensslFlags() {
  if (existsSync('/usr/include/openssl/evp.h')) return { include: [], link: ['-lcrypto'] };
  const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
  return { include: [`-I${nodeInclude}`], link: ['-l:libcrypto.so.3'] };
}

function newest(files) {
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

/** Builds a target when missing or older than its sources; returns the binary or throws with the compiler's output. */
function build(clang, target) {
  const bin = join(out, target);
  const crypto = target === 'srtp' || target === 'plane';
  const sources = [join(here, `${target}.cc`), ...(crypto ? [join(root, 'src', 'srtp.cc')] : []), ...(target === 'plane' ? [join(root, 'src', 'plane.cc')] : [])];
  const headers = readdirSync(join(root, 'src'))
    .filter((f) => f.endsWith('.h'))
    .map((f) => join(root, 'src', f));
  if (existsSync(bin) && statSync(bin).mtimeMs >= newest([...sources, ...headers, fileURLToPath(import.meta.url)])) return bin;
  const ssl = opensslFlags();
  const args = [
    '-std=c++17',
    '-g',
    '-O1',
    '-fsanitize=fuzzer,address,undefined',
    '-fno-sanitize-recover=undefined',
    '-fno-omit-frame-pointer',
    '-DOPENSSL_API_COMPAT=0x30000000L',
    ...ssl.include,
    ...sources,
    '-o',
    bin,
    ...(crypto ? ssl.link : []),
  ];
  const r = spawnSync(clang, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fuzz: building the ${target} target failed:\n${clang} ${args.join(' ')}\n${r.stderr}`);
  return bin;
}

// Seeds: one valid packet of each kind the target reads, so the fuzzer starts inside the format.
function rtpPacket({ pt = 96, seq = 1000, ts = 90000, ssrc = 0x11223344, marker = true, payload = [] } = {}) {
  // One-byte header extensions (RFC 8285): id 1 (mid "0"), id 3 (transport-cc seq), id 4 (rid "h").
  const ext = [0xbe, 0xde, 0x00, 0x02, 0x10, 0x30, 0x31, 0x00, 0x2a, 0x40, 0x68, 0x00];
  return Buffer.from([
    0x90,
    (marker ? 0x80 : 0) | pt,
    seq >> 8,
    seq & 0xff,
    ts >>> 24,
    (ts >> 16) & 0xff,
    (ts >> 8) & 0xff,
    ts & 0xff,
    ssrc >>> 24,
    (ssrc >> 16) & 0xff,
    (ssrc >> 8) & 0xff,
    ssrc & 0xff,
    ...ext,
    ...payload,
  ]);
}
// VP8 keyframe start: descriptor X|S, I|L with 15-bit picture id and TL0PICIDX, then a keyframe tag with 640x360.
const VP8_KEY = [0x90, 0xc0, 0x80, 0x2a, 0x07, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0, 0];
const H264_IDR = [0x7c, 0x85, 0x88, 0x84, 0x00];
const VP9_KEY = [0x8a, 0x00, 0x2a, 0x00, 0x00];

function rtcp(type, count, body) {
  const words = body.length / 4;
  return [0x80 | count, type, 0, words, ...body];
}
const u32 = (v) => [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
const SR = rtcp(200, 1, [
  ...u32(0x11223344),
  ...u32(0xe0000000),
  ...u32(0),
  ...u32(90000),
  ...u32(100),
  ...u32(10000),
  ...u32(0x55667788),
  0x01,
  0,
  0,
  3,
  ...u32(1200),
  ...u32(40),
  ...u32(0),
  ...u32(0),
]);
const NACK = rtcp(205, 1, [...u32(1), ...u32(0x11223344), 0x03, 0xe8, 0x00, 0x05]);
const FIR = rtcp(206, 4, [...u32(1), ...u32(0), ...u32(0x11223344), 7, 0, 0, 0]);
const REMB = rtcp(206, 15, [...u32(1), ...u32(0), 0x52, 0x45, 0x4d, 0x42, 1, 0x0a, 0x12, 0x34, ...u32(0x11223344)]);
const TWCC = rtcp(205, 15, [...u32(1), ...u32(0x11223344), 0x00, 0x10, 0x00, 0x05, 0x00, 0x00, 0x01, 0x00, 0x20, 0x05, 0xd6, 0x00, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00]);
const PLI = rtcp(206, 1, [...u32(1), ...u32(0x11223344)]);
function stunBinding(username) {
  const u = Buffer.from(username);
  const padded = Buffer.concat([u, Buffer.alloc((4 - (u.length % 4)) % 4)]);
  const attr = Buffer.concat([Buffer.from([0x00, 0x06, 0, u.length]), padded]);
  return Buffer.concat([Buffer.from([0x00, 0x01, 0, attr.length, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 7), attr]);
}

/** A plane input: datagrams of [flags u8][length u16][bytes] (see plane.cc). */
function datagrams(...list) {
  return Buffer.concat(list.map(([flags, b]) => Buffer.concat([Buffer.from([flags, b.length >> 8, b.length & 0xff]), Buffer.from(b)])));
}

const SEEDS = {
  rtp: [rtpPacket({ payload: VP8_KEY }), rtpPacket({ pt: 102, payload: H264_IDR }), rtpPacket({ pt: 98, payload: VP9_KEY }), rtpPacket({ pt: 111, marker: false, payload: [0xfc, 1, 2, 3] })],
  rtcp: [Buffer.from([...SR, ...NACK]), Buffer.from([...SR, ...REMB, ...PLI]), Buffer.from(FIR), Buffer.from(TWCC)],
  stun: [stunBinding('abcd:efgh'), stunBinding('ufrag-only')],
  plane: [
    // the publisher's keyframe, a delta on the other layer, a subscriber's NACK and PLI, the publisher's SR
    datagrams([0, rtpPacket({ payload: VP8_KEY })], [0, rtpPacket({ seq: 1001, ssrc: 0x55667788, payload: VP8_KEY })], [1, [...NACK, ...PLI]], [0, SR]),
    datagrams([8, rtpPacket({ payload: VP8_KEY })], [2, TWCC], [2, REMB], [3, rtpPacket({ payload: VP8_KEY })], [4, stunBinding('abcd:efgh')]),
    // RTX (payload type 97, OSN first): a repair of the missing 999, one of the 1000 already here, padding on an unsignalled SSRC, then a NACK and probes
    datagrams(
      [0, rtpPacket({ payload: VP8_KEY })],
      [0, rtpPacket({ pt: 97, seq: 7, ssrc: 0x99aabbcc, payload: [0x03, 0xe7, ...VP8_KEY] })],
      [0, rtpPacket({ pt: 97, seq: 8, ssrc: 0x99aabbcc, payload: [0x03, 0xe8, ...VP8_KEY] })],
      [0, rtpPacket({ pt: 97, seq: 9, ssrc: 0x12121212, payload: [] })],
      [0x71, [...NACK, ...PLI]], // then 3 probe packets on each down-track
    ),
  ],
  srtp: [Buffer.from([0, ...rtpPacket({ payload: VP8_KEY })]), Buffer.from([1, ...rtpPacket({ payload: VP8_KEY })]), Buffer.from([0, ...SR, ...NACK]), Buffer.from([1, ...SR])],
};

function writeSeeds(target) {
  const dir = join(out, 'seeds', target);
  mkdirSync(dir, { recursive: true });
  for (const [i, b] of SEEDS[target].entries()) writeFileSync(join(dir, `seed-${i}`), b);
  return dir;
}

/** Runs one target for `seconds`; returns { target, ok, runs, corpus, crash?, output }. */
function fuzz(clang, target, seconds) {
  const bin = build(clang, target);
  const seeds = writeSeeds(target);
  const corpus = join(out, 'corpus', target);
  const crashes = join(out, 'crashes');
  mkdirSync(corpus, { recursive: true });
  mkdirSync(crashes, { recursive: true });
  const r = spawnSync(bin, [`-max_total_time=${seconds}`, '-timeout=10', '-rss_limit_mb=2048', '-max_len=2048', '-print_final_stats=1', `-artifact_prefix=${crashes}/${target}-`, corpus, seeds], {
    encoding: 'utf8',
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' },
  });
  const output = `${r.stdout}${r.stderr}`;
  const runs = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(output)?.[1] ?? 0);
  const crash = /Test unit written to (\S+)/.exec(output)?.[1];
  return { target, ok: r.status === 0, runs, corpus: readdirSync(corpus).length, crash, output };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const seconds = Number(option('seconds', '2'));
  const targets = option('targets', TARGETS.join(',')).split(',');
  const clang = findClang();
  if (!clang) {
    console.log('fuzz: clang++ was not found, so the addon was not fuzzed (Debian: apt-get install clang, which brings libFuzzer and the sanitizers)');
    process.exit(NO_TOOLCHAIN);
  }
  mkdirSync(out, { recursive: true });
  let failed = false;
  for (const target of targets) {
    if (!TARGETS.includes(target)) {
      console.error(`fuzz: no target "${target}" (targets: ${TARGETS.join(', ')})`);
      process.exit(1);
    }
    let r;
    try {
      r = fuzz(clang, target, seconds);
    } catch (e) {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    }
    console.log(`fuzz: ${target.padEnd(5)} ${r.ok ? 'ok    ' : 'FAILED'} ${String(r.runs).padStart(9)} inputs in ${seconds} s, corpus ${r.corpus}`);
    if (!r.ok) {
      failed = true;
      console.log(r.output.split('\n').slice(-60).join('\n'));
      if (r.crash) console.log(`fuzz: the input is ${r.crash}; replay it with: ${join(out, target)} ${r.crash}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
