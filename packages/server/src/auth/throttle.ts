// Failed logins, throttled per user and per address with growing delays, on
// every way in (each dialect's join, the admin API's Basic auth, a user's
// own password change). A few failures are free; after that each failure
// makes the next attempt for that user (or from that address) wait longer,
// doubling up to a ceiling, until a success or a quiet spell clears it. An
// attempt made too early is refused without the password being checked, so
// guessing costs the attacker time and the server no hashing.
import { isIPv4, isIPv6 } from 'node:net';
import type { Counter } from 'prom-client';
import type { Logger } from '../log.ts';

export interface ThrottleLimits {
  /** Failures for one user (a group's user, or an administrator) before delays start. */
  freeUserFailures: number;
  /** Failures from one address (an IPv6 /64) before delays start. */
  freeAddressFailures: number;
  /** The first delay; each further failure doubles it. */
  baseDelayMs: number;
  /** The longest delay. */
  maxDelayMs: number;
  /** A user or address with no attempt for this long starts afresh. */
  forgetAfterMs: number;
  /** Users and addresses remembered at most (the least recently seen go first). */
  maxEntries: number;
}

export const DEFAULT_THROTTLE_LIMITS: ThrottleLimits = {
  freeUserFailures: 5,
  freeAddressFailures: 20,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  forgetAfterMs: 15 * 60_000,
  maxEntries: 100_000,
};

/** What is trying to log in: any of a user (scoped by the caller: "group/user", "admin user"), an address. */
export interface LoginKeys {
  /** The account, already scoped so that two groups' "bob" are two keys; for messages. */
  user?: { key: string; label: string } | undefined;
  /** The client's network address, as the socket gave it. */
  address?: string | undefined;
  /** The way in, for metrics and logs: 'galene', 'camus', 'rtcpool', 'admin'. */
  via: string;
}

/** A login refused because it came too soon after failures; says when to retry. */
export class LoginThrottledError extends Error {
  readonly code = 'login-throttled';
  constructor(
    readonly retryAfterMs: number,
    readonly who: string,
  ) {
    super(`too many failed logins for ${who}: wait ${Math.ceil(retryAfterMs / 1000)} s before trying again`);
    this.name = 'LoginThrottledError';
  }
}

interface State {
  /** Attempts not undone by a success (an attempt counts as failed from its start, so parallel guesses count too). */
  failures: number;
  /** No attempt before this (performance.now() time). */
  until: number;
  last: number;
  /** The lock that was last logged, so a flood of refusals logs once. */
  logged: number;
}

export interface LoginThrottleMetrics {
  failures: Counter<'via'>;
  throttled: Counter<'via'>;
}

export class LoginThrottle {
  private readonly states = new Map<string, State>();
  readonly limits: ThrottleLimits;

  constructor(private readonly deps: { log?: Logger | undefined; metrics?: LoginThrottleMetrics | undefined; limits?: Partial<ThrottleLimits> | undefined } = {}) {
    this.limits = { ...DEFAULT_THROTTLE_LIMITS, ...deps.limits };
  }

  /**
   * Checks whether a login may be tried now and counts it as a failure
   * until `succeeded` says otherwise. Throws LoginThrottledError when it
   * comes too early; the credentials must then not be checked.
   */
  begin(keys: LoginKeys, now = performance.now()): LoginAttempt {
    const entries: { key: string; state: State; free: number; who: string }[] = [];
    if (keys.user !== undefined) entries.push({ key: `u\n${keys.user.key}`, state: this.state(`u\n${keys.user.key}`, now), free: this.limits.freeUserFailures, who: keys.user.label });
    const address = keys.address === undefined ? undefined : addressKey(keys.address);
    if (address !== undefined) entries.push({ key: `a\n${address}`, state: this.state(`a\n${address}`, now), free: this.limits.freeAddressFailures, who: 'your address' });
    for (const e of entries) {
      if (now < e.state.until) {
        this.deps.metrics?.throttled.inc({ via: keys.via });
        if (e.state.logged !== e.state.until) {
          e.state.logged = e.state.until;
          this.deps.log?.warn(
            { via: keys.via, who: e.who, address: keys.address, failures: e.state.failures, retryAfterMs: Math.ceil(e.state.until - now) },
            'login throttled after repeated failures',
          );
        }
        throw new LoginThrottledError(e.state.until - now, e.who);
      }
    }
    for (const e of entries) {
      e.state.failures++;
      e.state.until = now + this.delay(e.state.failures, e.free);
    }
    return new LoginAttempt(this, keys, entries, now);
  }

  /** How long the next attempt must wait after `failures` failures, `free` of them free. */
  delay(failures: number, free: number): number {
    if (failures <= free) return 0;
    return Math.min(this.limits.maxDelayMs, this.limits.baseDelayMs * 2 ** Math.min(30, failures - free - 1));
  }

  /** Users and addresses currently remembered. */
  get size(): number {
    return this.states.size;
  }

  /** @internal */
  settle(keys: LoginKeys, entries: { key: string; state: State; free: number }[], started: number, how: 'ok' | 'failed' | 'undo', reason?: string): void {
    if (how !== 'failed') {
      for (const e of entries) {
        if (how === 'ok' && e.key.startsWith('u\n')) {
          e.state.failures = 0;
          e.state.until = 0;
        } else {
          e.state.failures = Math.max(0, e.state.failures - 1);
          e.state.until = started + this.delay(e.state.failures, e.free);
        }
      }
      return;
    }
    this.deps.metrics?.failures.inc({ via: keys.via });
    this.deps.log?.warn({ via: keys.via, user: keys.user?.label, address: keys.address, reason }, 'login failed');
  }

  private state(key: string, now: number): State {
    let s = this.states.get(key);
    if (s !== undefined && now - s.last > this.limits.forgetAfterMs && now >= s.until) s = undefined;
    if (s === undefined) s = { failures: 0, until: 0, last: now, logged: -1 };
    // Re-inserted so the map's order is least recently seen first.
    this.states.delete(key);
    this.states.set(key, s);
    s.last = now;
    while (this.states.size > this.limits.maxEntries) this.states.delete(this.states.keys().next().value!);
    return s;
  }
}

/** One login in progress: say how it ended. */
export class LoginAttempt {
  private settled = false;

  constructor(
    private readonly throttle: LoginThrottle,
    private readonly keys: LoginKeys,
    private readonly entries: { key: string; state: State; free: number }[],
    private readonly started: number,
  ) {}

  succeeded(): void {
    if (this.settled) return;
    this.settled = true;
    this.throttle.settle(this.keys, this.entries, this.started, 'ok');
  }

  /** The credentials were wrong (already counted; this logs it and counts it in /metrics). */
  failed(reason: string): void {
    if (this.settled) return;
    this.settled = true;
    this.throttle.settle(this.keys, this.entries, this.started, 'failed', reason);
  }

  /** The attempt ended for a reason that says nothing about the credentials (the group is full, say). */
  abandoned(): void {
    if (this.settled) return;
    this.settled = true;
    this.throttle.settle(this.keys, this.entries, this.started, 'undo');
  }
}

/**
 * The key of an address: IPv4 as is (also when mapped into IPv6), IPv6 by
 * its /64, since one host usually has a whole /64 to pick from.
 */
export function addressKey(address: string): string | undefined {
  const a = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1];
  if (isIPv4(a)) return a;
  if (!isIPv6(a.split('%')[0]!)) return undefined;
  const [head = '', tail = ''] = a.split('%')[0]!.split('::') as [string, string?];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail counts as two groups.
  const rightGroups = right.length > 0 && right.at(-1)!.includes('.') ? right.length + 1 : right.length;
  const groups = a.includes('::') ? [...left, ...Array(8 - left.length - rightGroups).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
