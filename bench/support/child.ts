// Stopping a benchmark's child process (a server under test, Janus, a load
// generator): ask it to stop, wait, and kill it if it does not.
import type { ChildProcess } from 'node:child_process';

export interface StopOptions {
  /** How the child is asked to stop: a signal (default SIGTERM) or a function (an IPC message). */
  ask?: NodeJS.Signals | (() => void);
  /** How long it may take before SIGKILL, ms. */
  graceMs: number;
}

/** Resolves once the child has exited; true if it had to be killed. */
export async function stopChild(child: ChildProcess, { ask = 'SIGTERM', graceMs }: StopOptions): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (typeof ask === 'function') {
    try {
      ask();
    } catch {
      // The IPC channel is gone: a signal still reaches it.
      child.kill('SIGTERM');
    }
  } else {
    child.kill(ask);
  }
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
  return killed;
}
