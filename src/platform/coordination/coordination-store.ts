/** A bounded set of slots (e.g. a caller's concurrent streams): how many members it may hold. */
export interface SlotClaim {
  key: string;
  limit: number;
}

/** How an attempt counter counts: a fixed window from its first attempt, and what happens at the limit. */
export interface AttemptCounterSpec {
  windowMs: number;
  /** Attempts allowed per window; unset counts without ever refusing. */
  limit?: number;
  /** An attempt that finds the limit reached blocks the key this long, then a new window starts; unset: until the window ends. */
  blockMs?: number;
}

/** The answer to one counted attempt. */
export interface AttemptCount {
  allowed: boolean;
  /** Attempts counted in the current window (this one included when allowed). */
  count: number;
  /** When a refused caller may try again, on the caller's clock; 0 when allowed. */
  retryAtMs: number;
  /** When the current window ends (the count starts again), on the caller's clock. */
  windowEndsAtMs: number;
}

/** The answer to holding a gate. */
export interface GateHold {
  /** False only when `ifOpen` was asked and the gate was shut. */
  held: boolean;
  /** When the gate opens (again), on the caller's clock. */
  openAtMs: number;
}

/**
 * Shared, short-lived coordination state between control-plane replicas:
 * leases (worker liveness, later leadership and session ownership) and
 * pub/sub (commands for a worker whose stream lives on another replica).
 * PostgreSQL stays the source of truth; everything here may be lost and
 * rebuilt. Two adapters: Redis (several replicas) and in-process (one
 * replica, nothing to install). Both pass tests/integration/coordination-store.contract.test.ts.
 */
export interface CoordinationStore {
  /** Which adapter this is, for logs and /readyz. */
  readonly kind: 'redis' | 'memory';

  /** Takes (or extends) the lease unless someone else holds it. Returns whether `holder` now holds it. */
  acquireLease(key: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Sets the lease to `holder` whoever held it before (a worker's stream owner takes over). */
  forceLease(key: string, holder: string, ttlMs: number): Promise<void>;
  /** Extends the lease only while `holder` still holds it. Returns false when it was lost. */
  renewLease(key: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lease only while `holder` still holds it. */
  releaseLease(key: string, holder: string): Promise<boolean>;
  /** Current holders, in the order of `keys`; null where no live lease exists. */
  readLeases(keys: readonly string[]): Promise<(string | null)[]>;

  /**
   * Takes or extends a leadership lease. Each new term (a holder taking the
   * lease when it was free) gets a fencing token greater than every earlier
   * term's, so writes made on behalf of a deposed leader can be refused.
   * Returns the token of `holder`'s current term, or null when another holds it.
   */
  acquireLeadership(key: string, holder: string, ttlMs: number): Promise<number | null>;
  /** Gives up leadership if `holder` still has it. */
  releaseLeadership(key: string, holder: string): Promise<void>;

  publish(channel: string, message: string): Promise<void>;
  /** Resolves once the subscription is active; the returned function ends it. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;

  /**
   * Takes a slot for `member` under every claim's key at once, all or none,
   * unless one of them already holds `limit` live slots. A slot lives until
   * `expiresAtMs` (wall-clock ms) unless renewed, so the slots of a replica
   * that dies free themselves; `nowMs` is the caller's wall clock. Returns
   * null when taken, or the key of the first claim that was full.
   */
  acquireSlots(
    claims: readonly SlotClaim[],
    member: string,
    nowMs: number,
    expiresAtMs: number,
  ): Promise<string | null>;
  /** Pushes back the expiry of slots still held (a slot already expired or released stays gone). */
  renewSlots(slots: readonly { key: string; member: string }[], nowMs: number, expiresAtMs: number): Promise<void>;
  /** Gives slots back. */
  releaseSlots(keys: readonly string[], member: string): Promise<void>;
  /** Live slots under `key` at `nowMs`. */
  countSlots(key: string, nowMs: number): Promise<number>;

  // Attempt counters and gates take every time from the caller (the injected
  // clock), not from the store (Redis's own time would put the rules built on
  // them out of a fake clock's reach). Every call is atomic.

  /** Counts one attempt at `nowMs` unless the key is blocked or already at its limit (which starts the block). */
  countAttempt(key: string, nowMs: number, spec: AttemptCounterSpec): Promise<AttemptCount>;
  /** Takes back one attempt of the current window (one that turned out not to count); never lifts a block. */
  uncountAttempt(key: string, nowMs: number): Promise<void>;
  /** Forgets the key's attempts and any block. */
  clearAttempts(key: string): Promise<void>;
  /**
   * Keeps a gate shut until at least `untilMs` (never opens it sooner). With
   * `ifOpen`, does so only when the gate is open at `nowMs`, so exactly one of
   * several racing callers passes an open gate.
   */
  holdGate(key: string, nowMs: number, untilMs: number, options?: { ifOpen?: boolean }): Promise<GateHold>;

  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
