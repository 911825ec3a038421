// `atrium ctl`: administer a running server over its admin API, with the
// commands and options of Galène's galenectl (so an admin moving from Galène
// keeps their habits: `-group x` works as well as `--group x`). Global
// options come before the command; they default to the configuration file
// that `initial-setup` writes.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AdminApi, CtlError } from './api.ts';
import { COMMANDS, type CtlContext, commandHelp, parseCommand } from './commands.ts';
import { readStdin } from './options.ts';

const GLOBAL_OPTIONS = {
  server: { type: 'string' },
  insecure: { type: 'boolean', default: false },
  config: { type: 'string' },
  'admin-username': { type: 'string' },
  'admin-password': { type: 'string' },
  'admin-token': { type: 'string' },
} as const;

function configDir(): string {
  return process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
}

/** Where initial-setup stores the server and credentials. */
export function defaultConfigFile(): string {
  return join(configDir(), 'atrium', 'atrium-ctl.json');
}

/** galenectl's own file, read when atrium ctl has none, so a Galène admin's setup carries over. */
function galenectlConfigFile(): string {
  return join(configDir(), 'galene', 'galenectl.json');
}

const CONFIG_FIELDS = ['server', 'admin-username', 'admin-password', 'admin-token'];

async function readConfig(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CtlError(`cannot read the configuration file ${file}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CtlError(`the configuration file ${file} is not JSON (${(e as Error).message}); fix it or remove it`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CtlError(`the configuration file ${file} must hold a JSON object`);
  for (const [k, x] of Object.entries(v)) {
    if (!CONFIG_FIELDS.includes(k)) throw new CtlError(`the configuration file ${file} has an unknown field "${k}"; known: ${CONFIG_FIELDS.join(', ')}`);
    if (typeof x !== 'string') throw new CtlError(`the configuration file ${file}: field "${k}" must be a string`);
  }
  return v as Record<string, string>;
}

function usage(): string {
  const names = Object.keys(COMMANDS).sort();
  return `Usage: atrium ctl [global options] COMMAND [options] [args...]

Administers a running Atrium (or Galène) server through its admin API
(/galene-api/v0/), with the commands of Galène's galenectl.

Global options:
  --server URL           the server (default: from the configuration file, else
                         https://localhost:8443)
  --insecure             accept the server's certificate even if self-signed
  --config FILE          configuration file (default ${defaultConfigFile()};
                         galenectl's ${galenectlConfigFile()} is read when it is missing)
  --admin-username NAME  an administrator of the server's data/config.json
  --admin-password PW    their password
  --admin-token TOKEN    or a token with the "admin" permission

Commands:
${names.map((n) => `  ${n.padEnd(17)}  ${COMMANDS[n]!.description}`).join('\n')}

Run "atrium ctl COMMAND --help" for the options of each command.
`;
}

export interface CtlIo {
  out(s: string): void;
  err(s: string): void;
  stdin(): Promise<string>;
}

const PROCESS_IO: CtlIo = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`), stdin: readStdin };

/** Runs one `atrium ctl` command line; throws CtlError for what the user must fix. */
export async function runCtl(argv: string[], io: CtlIo = PROCESS_IO): Promise<number> {
  // Global options are those before the command name.
  const at = argv.findIndex((a, i) => !a.startsWith('-') && !(i > 0 && needsValue(argv[i - 1]!)));
  const globalArgs = at < 0 ? argv : argv.slice(0, at);
  const name = at < 0 ? undefined : argv[at];
  const rest = at < 0 ? [] : argv.slice(at + 1);
  const { values: g } = parseCommand('ctl', globalArgs, GLOBAL_OPTIONS);
  if (g.help || name === undefined || name === 'help') {
    (name === undefined && !g.help ? io.err : io.out)(usage().trimEnd());
    return name === undefined && !g.help ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`atrium ctl: unknown command "${name}"\n\n${usage().trimEnd()}`);
    return 2;
  }
  const { values, positionals } = parseCommand(name, rest, command.options, command.triState);
  if (values.help) {
    io.out(commandHelp(command).trimEnd());
    return 0;
  }
  const takesPatterns = name === 'list-groups' || name === 'list-users';
  if (positionals.length > 0 && !takesPatterns) throw new CtlError(`${name}: unexpected argument "${positionals[0]}" (see "atrium ctl ${name} --help")`);

  const explicit = g.config as string | undefined;
  const configFile = explicit ?? defaultConfigFile();
  const config = await readConfig(explicit !== undefined || existsSync(configFile) ? configFile : galenectlConfigFile());
  const ctx: CtlContext = {
    server: (g.server as string | undefined) || config.server || 'https://localhost:8443',
    insecure: g.insecure === true,
    configFile,
    adminUsername: (g['admin-username'] as string | undefined) || config['admin-username'],
    adminPassword: (g['admin-password'] as string | undefined) || config['admin-password'],
    adminToken: (g['admin-token'] as string | undefined) || config['admin-token'],
    api: () => new AdminApi({ server: ctx.server, insecure: ctx.insecure, credentials: { username: ctx.adminUsername, password: ctx.adminPassword, token: ctx.adminToken } }),
    out: io.out,
    err: io.err,
    stdin: io.stdin,
  };
  await command.run(ctx, values as Record<string, unknown>, positionals);
  return 0;
}

/** Whether a global option takes the next argument as its value. */
function needsValue(arg: string): boolean {
  const name = arg.replace(/^--?/, '');
  if (name.includes('=')) return false;
  const spec = (GLOBAL_OPTIONS as Record<string, { type: string }>)[name];
  return spec?.type === 'string';
}

export { CtlError };
