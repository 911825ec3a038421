// The atrium command line: `serve` (the default), `hash-password`, `token`,
// `ctl` (galenectl's commands over the admin API).
// Flags mirror Galène's where they can, so people can switch.
import { CtlError, runCtl } from './ctl/index.ts';
import { runHashPassword } from './hash-password.ts';
import { runServe } from './serve.ts';
import { runToken } from './token.ts';

const USAGE = `Usage: atrium [command] [options]

Commands:
  serve           run the server (the default)
  hash-password   print a password definition to paste into a group file
  token           create an invite link (stateful token) for a group
  ctl             administer a running server: groups, users, passwords,
                  tokens (the commands of Galène's galenectl)

Run "atrium <command> --help" for the options of each command.
`;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first.startsWith('-')) {
    if (first === '--help' || first === '-h') {
      process.stdout.write(USAGE);
      return 0;
    }
    return runServe(argv);
  }
  switch (first) {
    case 'serve':
      return runServe(rest);
    case 'hash-password':
      return runHashPassword(rest);
    case 'token':
      return runToken(rest);
    case 'ctl':
      return runCtl(rest);
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`atrium: unknown command "${first}"\n\n${USAGE}`);
      return 2;
  }
}

try {
  const code = await main(process.argv.slice(2));
  if (code !== 0) process.exitCode = code;
} catch (e) {
  process.stderr.write(`${e instanceof CtlError ? 'atrium ctl' : 'atrium'}: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
