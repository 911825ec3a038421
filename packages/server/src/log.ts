// Structured logging for the whole server (pino). Every module takes a
// Logger so tests can silence or capture it.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'atrium',
    level: opts.level ?? process.env.ATRIUM_LOG_LEVEL ?? 'info',
    // Never let secrets reach the log, whatever a caller passes in.
    redact: { paths: ['password', '*.password', 'token', '*.token', 'credential', '*.credential', 'key', '*.key'], censor: '[redacted]' },
  });
}

/** A logger that drops everything: for tests and tools. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
