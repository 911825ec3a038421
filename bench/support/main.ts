// The shell every benchmark command shares: a watchdog, exit codes for the
// signals, and one line on stderr for an error (a BenchError is the user's
// to fix and needs no stack).

/** An error in what the benchmark was asked to do (bad option, missing program): printed without a stack. */
export class BenchError extends Error {
  override name = 'BenchError';
}

/** Runs main, exits with its code; gives up after watchdogMs. */
export function runBenchMain(name: string, watchdogMs: number, main: () => Promise<number>): void {
  setTimeout(() => {
    process.stderr.write(`${name}: still running after ${watchdogMs / 1000} s; giving up\n`);
    process.exit(1);
  }, watchdogMs).unref();
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const msg = e instanceof BenchError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
      process.stderr.write(`${name}: error: ${msg}\n`);
      process.exit(1);
    },
  );
}
