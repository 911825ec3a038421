// Small parsers `atrium ctl` needs: Go-style flags (`-group x` as well as
// `--group x`, booleans as `-flag=false`), Go durations (`90m`, `1h30m`),
// shell-style patterns for list filters, and secrets read from the terminal
// without echo.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CtlError } from './api.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's arguments the way galenectl's users type them: a long
 * option may have one dash or two, and the options named in `triState`
 * (booleans that may be left unset) take `=true`/`=false` or nothing.
 */
export function parseCommand(command: string, argv: string[], options: OptionSpec, triState: string[] = []): { values: Record<string, unknown>; positionals: string[] } {
  const known = new Set([...Object.keys(options), 'help']);
  const args: string[] = [];
  for (const a of argv) {
    let arg = a;
    // -group => --group (a single letter stays a short option: -l).
    if (/^-[a-zA-Z][a-zA-Z0-9-]+(=.*)?$/.test(arg)) arg = `-${arg}`;
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name !== undefined && triState.includes(name) && !arg.includes('=')) arg = `--${name}=true`;
    args.push(arg);
  }
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    const values = r.values as Record<string, unknown>;
    for (const name of triState) {
      const v = values[name];
      if (v !== undefined && v !== 'true' && v !== 'false') throw new Error(`--${name} takes true or false, not "${String(v)}"`);
    }
    return { values, positionals: r.positionals };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, '');
    throw new CtlError(`${command}: ${msg} (see "atrium ctl ${command} --help"; known options: ${[...known].map((k) => `--${k}`).join(' ')})`);
  }
}

export function triStateValue(v: unknown): boolean | undefined {
  return v === undefined ? undefined : v === 'true';
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** A Go duration (time.ParseDuration: "300ms", "1.5h", "2h45m"), plus "d" for days; in milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)/y;
  let total = 0;
  let i = s.startsWith('-') || s.startsWith('+') ? 1 : 0;
  const sign = s.startsWith('-') ? -1 : 1;
  if (i >= s.length) throw new CtlError(`${what} "${text}" is not a duration: use a number and a unit, such as 90m, 24h or 1h30m`);
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new CtlError(`${what} "${text}" is not a duration: use a number and a unit (ms, s, m, h, d), such as 90m, 24h or 1h30m`);
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    i = re.lastIndex;
  }
  return sign * total;
}

/** Whether `name` matches a shell pattern (`*`, `?`, `[abc]`, `[!a-z]`), as galenectl's list filters (Go's path.Match). */
export function matchesPattern(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new CtlError(`bad pattern "${pattern}": "[" without "]"`);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!') || set.startsWith('^')) set = `^${set.slice(1)}`;
      re += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      re += escapeRe(pattern[++i]!);
    } else re += escapeRe(c);
  }
  return new RegExp(`${re}$`).test(name);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Reads a secret: without echo from a terminal, else the first line of standard input. */
export async function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) {
      chunks.push(c as Buffer);
      if (Buffer.concat(chunks).includes(10)) break;
    }
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let out = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return out;
        if (ch === '\u0003') throw new CtlError('interrupted');
        if (ch === '\u007f' || ch === '\b') out = out.slice(0, -1);
        else out += ch;
      }
    }
    return out;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** Standard input, whole. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The JSON object `--json` reads from standard input. */
export function jsonObjectOf(what: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CtlError(`${what}: standard input is not JSON (${(e as Error).message}); --json reads a JSON object such as {"public": true}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CtlError(`${what}: --json needs a JSON object on standard input, not ${Array.isArray(v) ? 'an array' : typeof v}`);
  return v as Record<string, unknown>;
}
