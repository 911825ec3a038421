// When to reconnect after the WebSocket to the server was lost, and how long
// to wait before each attempt: exponential backoff with jitter, capped.
// Pure functions, so the policy is tested without sockets or clocks.

export interface ReconnectOptions {
  /** Reconnect after an unexpected close (default true). */
  enabled?: boolean;
  /** Wait before the first attempt, in ms (default 500). */
  initialDelayMs?: number;
  /** Longest wait between attempts, in ms (default 30 000). */
  maxDelayMs?: number;
  /** Each failed attempt multiplies the wait by this (default 2). */
  factor?: number;
  /** Random spread of each wait, as a fraction of it (default 0.2: ±20 %). */
  jitter?: number;
  /** Attempts before giving up and calling `onclose` (default: never give up). */
  maxAttempts?: number;
}

export type ReconnectPolicy = Required<ReconnectOptions>;

export const DEFAULT_RECONNECT: ReconnectPolicy = {
  enabled: true,
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.2,
  maxAttempts: Number.POSITIVE_INFINITY,
};

export function reconnectPolicy(option: boolean | ReconnectOptions | undefined): ReconnectPolicy {
  if (option === undefined || option === true) return { ...DEFAULT_RECONNECT };
  if (option === false) return { ...DEFAULT_RECONNECT, enabled: false };
  const p = { ...DEFAULT_RECONNECT, ...withoutUndefined(option) };
  if (!(p.initialDelayMs >= 0) || !(p.maxDelayMs >= p.initialDelayMs) || !(p.factor >= 1) || !(p.jitter >= 0 && p.jitter < 1) || !(p.maxAttempts >= 0)) {
    throw new RangeError('reconnect options need 0 <= initialDelayMs <= maxDelayMs, factor >= 1, 0 <= jitter < 1 and maxAttempts >= 0');
  }
  return p;
}

/** The wait before attempt number `attempt` (1 for the first), in whole ms. */
export function backoffDelay(attempt: number, policy: ReconnectPolicy, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (n - 1));
  const spread = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.round(Math.min(policy.maxDelayMs, base * spread));
}

/**
 * WebSocket close codes after which reconnecting would not help. A kick is
 * recognised by the `kicked` message that precedes it, not by its close
 * code: Atrium also closes with 4001 when it shuts down, and a restarted
 * server should be reconnected to.
 */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  4003, // the server does not speak protocol version "2"
]);

export interface CloseContext {
  /** The application called `close()`. */
  requested: boolean;
  /** The server told us we were kicked (usermessage of kind `kicked`). */
  kicked: boolean;
  /** The handshake had succeeded at least once since `connect()`. */
  wasConnected: boolean;
  /** Reconnection attempts made since the connection was last up. */
  attempts: number;
}

/** Whether a closed WebSocket should be reopened. */
export function shouldReconnect(code: number, ctx: CloseContext, policy: ReconnectPolicy): boolean {
  if (!policy.enabled || ctx.requested || ctx.kicked || !ctx.wasConnected) return false;
  if (FINAL_CLOSE_CODES.has(code)) return false;
  return ctx.attempts < policy.maxAttempts;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
