import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Scheduler, Timer } from '../../lib/timers.js';
import type { AuthInvalidation, InvalidationEvent } from './auth-invalidation.js';
import { principalSubject, type Principal } from './principal.js';

/** Settings of long-lived calls, compiled from configuration. */
export interface LiveAccessOptions {
  /** A call ends after this long whatever its credential, so clients come back with a fresh one. */
  maxLifetimeMs: number;
  /**
   * A call re-checks its caller at least this often (±10%), as a backstop
   * for an invalidation message lost between replicas.
   */
  recheckIntervalMs: number;
}

/** What LiveAccess needs from identity, the platform and the composition root. */
export interface LiveAccessDependencies {
  /** Turns the call's credential into its current principal, or refuses (UNAUTHENTICATED...). */
  authenticate: (credential: string) => Promise<Principal>;
  invalidation: AuthInvalidation;
  clock: Clock;
  scheduler: Scheduler;
  /** Uniform in [0, 1); spreads periodic re-checks so they do not all fall due together. */
  random: () => number;
  logger: Logger;
}

/** One long-lived call's caller, kept current while the call lives. */
export interface LiveCaller {
  /** The caller as last checked (a role change shows here once re-checked). */
  current(): Principal;
  /** Resolves when no re-check is in flight: what current() says then includes every invalidation received so far. */
  settled(): Promise<void>;
  /** Calls `listener` once when the call must end, with the error to end it with. */
  onEnd(listener: (error: DomainError) => void): void;
  /** The call ended on its own: stop watching. */
  close(): void;
}

/**
 * Keeps the callers of long-lived calls (server streams) honest for as long
 * as the calls live. A call is re-checked — its credential authenticated
 * again and the RPC's permission applied to the result — whenever the auth
 * invalidation bus names its user, sign-in session, API key or tenant (on
 * any replica: the bus is shared), and periodically as a backstop. A caller
 * who lost access ends the call with the refusal (UNAUTHENTICATED or
 * PERMISSION_DENIED); a credential that expires ends it at the expiry; and
 * every call ends after a maximum lifetime so clients reconnect with a
 * fresh credential.
 */
export class LiveAccess {
  /** Live calls by the invalidation subjects that concern them (`user:…`, `session:…`, `key:…`, `tenant:…`). */
  private readonly bySubject = new Map<string, Set<WatchedCall>>();
  private unsubscribe: (() => void) | undefined;
  private readonly log: Logger;

  constructor(
    private readonly deps: LiveAccessDependencies,
    private readonly options: LiveAccessOptions,
  ) {
    this.log = deps.logger.child({ component: 'live-access' });
  }

  /** Starts listening to the invalidation bus (after the caches, which must forget first). */
  start(): void {
    this.unsubscribe ??= this.deps.invalidation.onInvalidate((event) => this.onInvalidation(event));
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Live calls being watched, for tests and metrics. */
  get size(): number {
    const calls = new Set<WatchedCall>();
    for (const set of this.bySubject.values()) for (const call of set) calls.add(call);
    return calls.size;
  }

  /**
   * Watches one call. `authorize` applies the RPC's permission rule to a
   * principal (throwing the refusal); it runs on every re-check, so a role
   * that no longer allows the RPC ends the call.
   */
  watch(input: { credential: string; principal: Principal; authorize: (principal: Principal) => void }): LiveCaller {
    const call = new WatchedCall(input, this.deps, this.options, this.log, (subjects) => this.forget(call, subjects));
    for (const subject of call.subjects) {
      let set = this.bySubject.get(subject);
      if (!set) {
        set = new Set();
        this.bySubject.set(subject, set);
      }
      set.add(call);
    }
    call.arm();
    return call;
  }

  private onInvalidation(event: InvalidationEvent): void {
    const subjects = invalidationSubjects(event);
    const affected = new Set<WatchedCall>();
    for (const subject of subjects) for (const call of this.bySubject.get(subject) ?? []) affected.add(call);
    for (const call of affected) call.recheck('invalidated');
  }

  private forget(call: WatchedCall, subjects: readonly string[]): void {
    for (const subject of subjects) {
      const set = this.bySubject.get(subject);
      set?.delete(call);
      if (set?.size === 0) this.bySubject.delete(subject);
    }
  }
}

/** The subjects an invalidation names, in the keys LiveAccess indexes calls by. */
function invalidationSubjects(event: InvalidationEvent): string[] {
  return [
    ...(event.userId ? [`user:${event.userId}`] : []),
    ...(event.sessionId ? [`session:${event.sessionId}`] : []),
    ...(event.apiKeyId ? [`key:${event.apiKeyId}`] : []),
    ...(event.tenantId ? [`tenant:${event.tenantId}`] : []),
  ];
}

/** The subjects whose invalidation concerns a call made by `principal`. */
export function subjectsOf(principal: Principal): string[] {
  const subjects = [principalSubject(principal)];
  if (principal.kind === 'user') subjects.push(`session:${principal.sessionId}`);
  if (principal.kind === 'api-key' && principal.creatorUserId) subjects.push(`user:${principal.creatorUserId}`);
  if (principal.tenantId) subjects.push(`tenant:${principal.tenantId}`);
  return subjects;
}

/** Codes that mean "this caller may no longer make this call"; anything else is a failure to check. */
const REFUSALS = new Set(['UNAUTHENTICATED', 'PERMISSION_DENIED']);

/** One watched call: its timers, its re-checks and how it ends. */
class WatchedCall implements LiveCaller {
  readonly subjects: readonly string[];
  private principal: Principal;
  private readonly timers: Timer[] = [];
  private recheckTimer: Timer | undefined;
  private inFlight: Promise<void> | undefined;
  /** An invalidation arrived while a re-check was in flight: check once more after it. */
  private again = false;
  private ended: DomainError | undefined;
  private closed = false;
  private readonly listeners: ((error: DomainError) => void)[] = [];

  constructor(
    private readonly input: {
      credential: string;
      principal: Principal;
      authorize: (principal: Principal) => void;
    },
    private readonly deps: LiveAccessDependencies,
    private readonly options: LiveAccessOptions,
    private readonly log: Logger,
    private readonly unregister: (subjects: readonly string[]) => void,
  ) {
    this.principal = input.principal;
    this.subjects = subjectsOf(input.principal);
  }

  /** Sets the lifetime and expiry timers and the first periodic re-check. */
  arm(): void {
    const { scheduler } = this.deps;
    this.timers.push(
      scheduler.schedule(this.options.maxLifetimeMs, () =>
        this.end(
          new DomainError(
            'UNAVAILABLE',
            `the stream reached its maximum lifetime of ${Math.round(this.options.maxLifetimeMs / 1000)} s; reconnect`,
            { details: { retryable: true } },
          ),
        ),
      ),
    );
    const expiresAt = this.principal.expiresAt;
    if (expiresAt) {
      const kind = this.principal.kind === 'user' ? 'access token' : 'API key';
      this.timers.push(
        scheduler.schedule(expiresAt.getTime() - this.deps.clock.now().getTime(), () =>
          this.end(new DomainError('UNAUTHENTICATED', `the ${kind} expired; reconnect with a fresh one`)),
        ),
      );
    }
    this.scheduleRecheck();
  }

  current(): Principal {
    return this.principal;
  }

  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  onEnd(listener: (error: DomainError) => void): void {
    if (this.ended) listener(this.ended);
    else this.listeners.push(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) timer.cancel();
    this.recheckTimer?.cancel();
    this.unregister(this.subjects);
  }

  /** Authenticates the credential again and applies the RPC's rule; ends the call if refused. */
  recheck(why: 'invalidated' | 'periodic'): void {
    if (this.closed) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.check(why).finally(() => {
      this.inFlight = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        this.recheck(why);
      }
    });
  }

  private async check(why: 'invalidated' | 'periodic'): Promise<void> {
    try {
      const principal = await this.deps.authenticate(this.input.credential);
      this.input.authorize(principal);
      this.principal = principal;
    } catch (error) {
      if (error instanceof DomainError && REFUSALS.has(error.code)) {
        this.log.info(
          { subject: principalSubject(this.principal), why, code: error.code, reason: error.message },
          'ending a stream: its caller lost access',
        );
        this.end(error);
        return;
      }
      // The check itself failed (database unreachable): keep the call and try again at the next tick.
      this.log.warn({ err: error, subject: principalSubject(this.principal) }, 'could not re-check a stream caller');
    }
  }

  private scheduleRecheck(): void {
    if (this.closed) return;
    const jitter = 0.9 + 0.2 * this.deps.random();
    this.recheckTimer = this.deps.scheduler.schedule(this.options.recheckIntervalMs * jitter, () => {
      this.recheck('periodic');
      this.scheduleRecheck();
    });
  }

  private end(error: DomainError): void {
    if (this.ended || this.closed) return;
    this.ended = error;
    for (const listener of this.listeners.splice(0)) listener(error);
    this.close();
  }
}
