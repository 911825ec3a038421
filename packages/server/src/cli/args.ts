// Argument parsing shared by the CLI commands: node's parseArgs with errors
// rewritten to say which command and how to get help.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Error(`${command}: ${(e as Error).message} (see "atrium ${command} --help")`);
  }
}
