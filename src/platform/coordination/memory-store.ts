import type { Clock } from '../../../lib/clock.js';
import type { AttemptCount, AttemptCounterSpec, CoordinationStore, GateHold, SlotClaim } from './coordination-store.js';

interface Lease {
  holder: string;
  expiresAtMs: number;
  /** Set on leadership leases: the term's fencing token. */
  token?: number;
}

interface Attempts {
  count: number;
  resetAtMs: number;
  blockedUntilMs: number;
}

/** Expired counters and gates are dropped after this many writes, so random keys cannot grow the maps forever. */
const PRUNE_EVERY_WRITES = 1000;

/**
 * In-process coordination store for a single control-plane replica (the
 * embedded developer setup). Leases expire lazily against the injected clock.
 */
export class MemoryCoordinationStore implements CoordinationStore {
  readonly kind = 'memory' as const;
  private readonly leases = new Map<string, Lease>();
  /** Last fencing token handed out per leadership key; survives the lease. */
  private readonly fences = new Map<string, number>();
  private readonly channels = new Map<string, Set<(message: string) => void>>();
  /** Slot sets: member -> expiry (wall-clock ms). */
  private readonly slots = new Map<string, Map<string, number>>();
  private readonly attempts = new Map<string, Attempts>();
  private readonly gates = new Map<string, number>();
  private writes = 0;
  private closed = false;

  constructor(private readonly clock: Clock) {}

  async acquireLease(key: string, holder: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    const current = this.live(key);
    if (current && current.holder !== holder) return false;
    this.leases.set(key, { holder, expiresAtMs: this.clock.monotonicMs() + ttlMs });
    return true;
  }

  async forceLease(key: string, holder: string, ttlMs: number): Promise<void> {
    this.assertOpen();
    this.leases.set(key, { holder, expiresAtMs: this.clock.monotonicMs() + ttlMs });
  }

  async renewLease(key: string, holder: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    const lease = this.live(key);
    if (lease?.holder !== holder) return false;
    lease.expiresAtMs = this.clock.monotonicMs() + ttlMs;
    return true;
  }

  async releaseLease(key: string, holder: string): Promise<boolean> {
    this.assertOpen();
    if (this.live(key)?.holder !== holder) return false;
    this.leases.delete(key);
    return true;
  }

  async readLeases(keys: readonly string[]): Promise<(string | null)[]> {
    this.assertOpen();
    return keys.map((key) => this.live(key)?.holder ?? null);
  }

  async acquireLeadership(key: string, holder: string, ttlMs: number): Promise<number | null> {
    this.assertOpen();
    const current = this.live(key);
    if (current && current.holder !== holder) return null;
    const token = current?.token ?? (this.fences.get(key) ?? 0) + 1;
    this.fences.set(key, token);
    this.leases.set(key, { holder, expiresAtMs: this.clock.monotonicMs() + ttlMs, token });
    return token;
  }

  async releaseLeadership(key: string, holder: string): Promise<void> {
    this.assertOpen();
    if (this.live(key)?.holder === holder) this.leases.delete(key);
  }

  async publish(channel: string, message: string): Promise<void> {
    this.assertOpen();
    for (const listener of this.channels.get(channel) ?? []) {
      // Delivered asynchronously, like Redis, so publishers never re-enter subscribers.
      queueMicrotask(() => listener(message));
    }
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    this.assertOpen();
    const listeners = this.channels.get(channel) ?? new Set();
    listeners.add(onMessage);
    this.channels.set(channel, listeners);
    return async () => {
      listeners.delete(onMessage);
      if (listeners.size === 0) this.channels.delete(channel);
    };
  }

  async acquireSlots(
    claims: readonly SlotClaim[],
    member: string,
    nowMs: number,
    expiresAtMs: number,
  ): Promise<string | null> {
    this.assertOpen();
    for (const { key, limit } of claims) {
      const set = this.liveSlots(key, nowMs);
      if (!set.has(member) && set.size >= limit) return key;
    }
    for (const { key } of claims) this.liveSlots(key, nowMs).set(member, expiresAtMs);
    return null;
  }

  async renewSlots(
    slots: readonly { key: string; member: string }[],
    _nowMs: number,
    expiresAtMs: number,
  ): Promise<void> {
    this.assertOpen();
    for (const { key, member } of slots) {
      const set = this.slots.get(key);
      if (set?.has(member)) set.set(member, expiresAtMs);
    }
  }

  async releaseSlots(keys: readonly string[], member: string): Promise<void> {
    this.assertOpen();
    for (const key of keys) {
      const set = this.slots.get(key);
      set?.delete(member);
      if (set?.size === 0) this.slots.delete(key);
    }
  }

  async countSlots(key: string, nowMs: number): Promise<number> {
    this.assertOpen();
    return this.liveSlots(key, nowMs).size;
  }

  async countAttempt(key: string, nowMs: number, spec: AttemptCounterSpec): Promise<AttemptCount> {
    this.assertOpen();
    this.pruneExpired(nowMs);
    const state = this.attempts.get(key) ?? { count: 0, resetAtMs: 0, blockedUntilMs: 0 };
    if (nowMs < state.blockedUntilMs) {
      return { allowed: false, count: state.count, retryAtMs: state.blockedUntilMs, windowEndsAtMs: state.resetAtMs };
    }
    if (nowMs >= state.resetAtMs) {
      state.count = 0;
      state.resetAtMs = nowMs + spec.windowMs;
    }
    this.attempts.set(key, state);
    if (spec.limit !== undefined && state.count >= spec.limit) {
      if (spec.blockMs) state.resetAtMs = nowMs + spec.blockMs;
      state.blockedUntilMs = state.resetAtMs;
      return { allowed: false, count: state.count, retryAtMs: state.blockedUntilMs, windowEndsAtMs: state.resetAtMs };
    }
    state.count += 1;
    return { allowed: true, count: state.count, retryAtMs: 0, windowEndsAtMs: state.resetAtMs };
  }

  async uncountAttempt(key: string, nowMs: number): Promise<void> {
    this.assertOpen();
    const state = this.attempts.get(key);
    if (state && state.count > 0 && nowMs < state.resetAtMs) state.count -= 1;
  }

  async clearAttempts(key: string): Promise<void> {
    this.assertOpen();
    this.attempts.delete(key);
  }

  async holdGate(key: string, nowMs: number, untilMs: number, options: { ifOpen?: boolean } = {}): Promise<GateHold> {
    this.assertOpen();
    this.pruneExpired(nowMs);
    const openAtMs = this.gates.get(key) ?? 0;
    if (options.ifOpen && openAtMs > nowMs) return { held: false, openAtMs };
    if (untilMs <= openAtMs) return { held: true, openAtMs };
    this.gates.set(key, untilMs);
    return { held: true, openAtMs: untilMs };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.leases.clear();
    this.channels.clear();
    this.slots.clear();
  }

  /** The key's slot set with expired slots dropped (created empty when missing). */
  private liveSlots(key: string, nowMs: number): Map<string, number> {
    let set = this.slots.get(key);
    if (!set) {
      set = new Map();
      this.slots.set(key, set);
    }
    for (const [member, expiresAtMs] of set) if (expiresAtMs <= nowMs) set.delete(member);
    return set;
    this.attempts.clear();
    this.gates.clear();
  }

  private pruneExpired(nowMs: number): void {
    if (++this.writes < PRUNE_EVERY_WRITES) return;
    this.writes = 0;
    for (const [key, state] of this.attempts) if (state.resetAtMs <= nowMs) this.attempts.delete(key);
    for (const [key, openAtMs] of this.gates) if (openAtMs <= nowMs) this.gates.delete(key);
  }

  private live(key: string): Lease | undefined {
    const lease = this.leases.get(key);
    if (lease && lease.expiresAtMs <= this.clock.monotonicMs()) {
      this.leases.delete(key);
      return undefined;
    }
    return lease;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('coordination store is closed');
  }
}
