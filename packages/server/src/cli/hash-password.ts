// `atrium hash-password`: hash a password into the definition a group file
// stores, so no plain password need be written to disk.
import { createInterface } from 'node:readline';
import { hashPassword } from '../groups/index.ts';
import { parse } from './args.ts';

const HELP = `Usage: atrium hash-password [--type pbkdf2|bcrypt] [PASSWORD]

Prints a password definition to paste into a group file, e.g.
  "users": { "alice": { "password": <this>, "permissions": "op" } }
Without PASSWORD, the password is read from the first line of standard input
(so it stays out of your shell history).
`;

export async function runHashPassword(argv: string[]): Promise<number> {
  const { values, positionals } = parse('hash-password', argv, { type: { type: 'string', default: 'pbkdf2' } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const type = values.type as string;
  if (type !== 'pbkdf2' && type !== 'bcrypt') throw new Error(`hash-password: --type must be pbkdf2 or bcrypt, not "${type}"`);
  if (positionals.length > 1) throw new Error('hash-password: give at most one password');
  const password = positionals[0] ?? (await firstLine());
  if (!password) throw new Error('hash-password: the password is empty');
  process.stdout.write(`${JSON.stringify(await hashPassword(password, type))}\n`);
  return 0;
}

async function firstLine(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  return '';
}
