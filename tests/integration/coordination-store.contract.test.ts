import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { systemClock } from '../../lib/clock.js';
import type { CoordinationStore } from '../../src/platform/coordination/coordination-store.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { RedisCoordinationStore } from '../../src/platform/coordination/redis-store.js';
import { createLogger } from '../../lib/logger.js';
import { TEST_REDIS_URL, uniqueRedisPrefix } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Both adapters must behave the same: this one suite runs against each. */
const adapters: [string, () => Promise<{ store: CoordinationStore; cleanup: () => Promise<void> }>][] = [
  ['in-process', async () => ({ store: new MemoryCoordinationStore(systemClock), cleanup: async () => {} })],
  [
    'redis',
    async () => {
      const prefix = uniqueRedisPrefix();
      const store = await RedisCoordinationStore.connect({ url: TEST_REDIS_URL, keyPrefix: prefix, logger });
      return {
        store,
        cleanup: async () => {
          const redis = new Redis(TEST_REDIS_URL);
          const keys = await redis.keys(`${prefix}*`);
          if (keys.length > 0) await redis.del(...keys);
          redis.disconnect();
        },
      };
    },
  ],
];

describe.each(adapters)('coordination store contract: %s', (_name, make) => {
  let store: CoordinationStore;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await make());
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  it('grants a free lease, refuses it to another holder, and lets the holder extend it', async () => {
    expect(await store.acquireLease('l1', 'a', 5000)).toBe(true);
    expect(await store.acquireLease('l1', 'b', 5000)).toBe(false);
    expect(await store.acquireLease('l1', 'a', 5000)).toBe(true);
    expect(await store.readLeases(['l1', 'missing'])).toEqual(['a', null]);
  });

  it('lets a lease expire after its TTL', async () => {
    expect(await store.acquireLease('l2', 'a', 150)).toBe(true);
    await sleep(300);
    expect(await store.readLeases(['l2'])).toEqual([null]);
    expect(await store.acquireLease('l2', 'b', 1000)).toBe(true);
  });

  it('renews only for the current holder', async () => {
    await store.forceLease('l3', 'a', 200);
    expect(await store.renewLease('l3', 'b', 5000)).toBe(false);
    expect(await store.renewLease('l3', 'a', 5000)).toBe(true);
    await sleep(300);
    expect(await store.readLeases(['l3'])).toEqual(['a']);
    expect(await store.renewLease('never', 'a', 1000)).toBe(false);
  });

  it('releases only for the current holder', async () => {
    await store.forceLease('l4', 'a', 5000);
    expect(await store.releaseLease('l4', 'b')).toBe(false);
    expect(await store.readLeases(['l4'])).toEqual(['a']);
    expect(await store.releaseLease('l4', 'a')).toBe(true);
    expect(await store.readLeases(['l4'])).toEqual([null]);
  });

  it('force-takes a lease from another holder', async () => {
    await store.forceLease('l5', 'a', 5000);
    await store.forceLease('l5', 'b', 5000);
    expect(await store.readLeases(['l5'])).toEqual(['b']);
    expect(await store.renewLease('l5', 'a', 5000)).toBe(false);
  });

  it('gives each new leadership term a larger fencing token and keeps it while the leader renews', async () => {
    const first = await store.acquireLeadership('lead', 'a', 200);
    expect(first).not.toBeNull();
    expect(await store.acquireLeadership('lead', 'b', 200)).toBeNull();
    expect(await store.acquireLeadership('lead', 'a', 200)).toBe(first);
    await sleep(350);
    // a's term ran out: b's term is a new one, fenced above a's.
    const second = await store.acquireLeadership('lead', 'b', 1000);
    expect(second).toBeGreaterThan(first as number);
    expect(await store.acquireLeadership('lead', 'a', 1000)).toBeNull();
    await store.releaseLeadership('lead', 'a'); // not a's to give up
    expect(await store.acquireLeadership('lead', 'a', 1000)).toBeNull();
    await store.releaseLeadership('lead', 'b');
    const third = await store.acquireLeadership('lead', 'a', 1000);
    expect(third).toBeGreaterThan(second as number);
  });

  it('reads no leases for no keys', async () => {
    expect(await store.readLeases([])).toEqual([]);
  });

  it('delivers published messages to every subscriber of the channel until they unsubscribe', async () => {
    const first: string[] = [];
    const second: string[] = [];
    const other: string[] = [];
    const stopFirst = await store.subscribe('ch', (m) => first.push(m));
    const stopSecond = await store.subscribe('ch', (m) => second.push(m));
    const stopOther = await store.subscribe('other', (m) => other.push(m));
    await store.publish('ch', 'hello');
    await waitFor(() => first.length === 1 && second.length === 1);
    await stopFirst();
    await store.publish('ch', 'again');
    await waitFor(() => second.length === 2);
    expect(first).toEqual(['hello']);
    expect(second).toEqual(['hello', 'again']);
    expect(other).toEqual([]);
    await stopSecond();
    await stopOther();
  });

  it('takes slots all-or-none up to each limit, and frees them on release', async () => {
    const now = 1_000_000;
    const claims = [
      { key: 'slots:caller', limit: 2 },
      { key: 'slots:tenant', limit: 3 },
    ];
    expect(await store.acquireSlots(claims, 'm1', now, now + 60_000)).toBeNull();
    expect(await store.acquireSlots(claims, 'm2', now, now + 60_000)).toBeNull();
    // The caller is full; the tenant, which had room, is not charged for the refusal.
    expect(await store.acquireSlots(claims, 'm3', now, now + 60_000)).toBe('slots:caller');
    expect(await store.countSlots('slots:tenant', now)).toBe(2);
    // Taking a slot already held is not a second slot.
    expect(await store.acquireSlots(claims, 'm1', now, now + 60_000)).toBeNull();
    expect(await store.countSlots('slots:caller', now)).toBe(2);
    // Another caller of the same tenant fills the tenant.
    expect(
      await store.acquireSlots([{ key: 'slots:other', limit: 5 }, claims[1]!], 'm4', now, now + 60_000),
    ).toBeNull();
    expect(await store.acquireSlots([{ key: 'slots:other', limit: 5 }, claims[1]!], 'm5', now, now + 60_000)).toBe(
      'slots:tenant',
    );
    await store.releaseSlots(['slots:caller', 'slots:tenant'], 'm1');
    expect(await store.acquireSlots(claims, 'm3', now, now + 60_000)).toBeNull();
  });

  it('lets a slot expire unless renewed (a dead replica frees its slots)', async () => {
    const t0 = 2_000_000;
    const claim = [{ key: 'slots:expiring', limit: 1 }];
    expect(await store.acquireSlots(claim, 'kept', t0, t0 + 1000)).toBeNull();
    await store.renewSlots([{ key: 'slots:expiring', member: 'kept' }], t0 + 900, t0 + 1900);
    expect(await store.acquireSlots(claim, 'late', t0 + 1500, t0 + 2500)).toBe('slots:expiring');
    expect(await store.countSlots('slots:expiring', t0 + 1500)).toBe(1);
    // Not renewed again: at its expiry the slot is gone and another may take it.
    expect(await store.countSlots('slots:expiring', t0 + 1900)).toBe(0);
    expect(await store.acquireSlots(claim, 'late', t0 + 1900, t0 + 2900)).toBeNull();
    // Renewing a slot that is gone does not bring it back.
    await store.renewSlots([{ key: 'slots:expiring', member: 'kept' }], t0 + 2000, t0 + 5000);
    expect(await store.countSlots('slots:expiring', t0 + 2000)).toBe(1);
  });

  // Attempt counters and gates run on the caller's clock: `t` below is a fake
  // time far from the real one, and nothing here sleeps.
  const t = Date.UTC(2030, 0, 1);

  it('counts attempts up to the limit, then blocks for blockMs and starts a new window', async () => {
    const spec = { windowMs: 60_000, limit: 2, blockMs: 10_000 };
    expect(await store.countAttempt('a1', t, spec)).toEqual({
      allowed: true,
      count: 1,
      retryAtMs: 0,
      windowEndsAtMs: t + 60_000,
    });
    expect(await store.countAttempt('a1', t + 1, spec)).toEqual({
      allowed: true,
      count: 2,
      retryAtMs: 0,
      windowEndsAtMs: t + 60_000,
    });
    // The block is the window now: it ends with the block.
    expect(await store.countAttempt('a1', t + 2, spec)).toEqual({
      allowed: false,
      count: 2,
      retryAtMs: t + 10_002,
      windowEndsAtMs: t + 10_002,
    });
    // Asking again during the block neither counts nor extends it.
    expect(await store.countAttempt('a1', t + 5000, spec)).toEqual({
      allowed: false,
      count: 2,
      retryAtMs: t + 10_002,
      windowEndsAtMs: t + 10_002,
    });
    expect(await store.countAttempt('a1', t + 10_002, spec)).toEqual({
      allowed: true,
      count: 1,
      retryAtMs: 0,
      windowEndsAtMs: t + 70_002,
    });
    expect(await store.countAttempt('other', t, spec)).toMatchObject({ allowed: true, count: 1 });
  });

  it('forgets attempts when their window ends, refuses until then without blockMs, and counts forever without a limit', async () => {
    const spec = { windowMs: 1000, limit: 1 };
    expect((await store.countAttempt('a2', t, spec)).allowed).toBe(true);
    expect(await store.countAttempt('a2', t + 10, spec)).toEqual({
      allowed: false,
      count: 1,
      retryAtMs: t + 1000,
      windowEndsAtMs: t + 1000,
    });
    expect(await store.countAttempt('a2', t + 1000, spec)).toEqual({
      allowed: true,
      count: 1,
      retryAtMs: 0,
      windowEndsAtMs: t + 2000,
    });
    for (let i = 1; i <= 5; i++)
      expect(await store.countAttempt('a3', t, { windowMs: 1000 })).toMatchObject({ count: i });
  });

  it('takes back an attempt within its window but never lifts a block, and clears a key', async () => {
    const spec = { windowMs: 60_000, limit: 2, blockMs: 10_000 };
    await store.countAttempt('a4', t, spec);
    await store.countAttempt('a4', t, spec);
    await store.uncountAttempt('a4', t + 1);
    expect(await store.countAttempt('a4', t + 2, spec)).toMatchObject({ allowed: true, count: 2 });
    expect((await store.countAttempt('a4', t + 3, spec)).allowed).toBe(false);
    await store.uncountAttempt('a4', t + 4);
    expect((await store.countAttempt('a4', t + 5, spec)).allowed).toBe(false);
    await store.clearAttempts('a4');
    expect(await store.countAttempt('a4', t + 6, spec)).toEqual({
      allowed: true,
      count: 1,
      retryAtMs: 0,
      windowEndsAtMs: t + 60_006,
    });
    await store.uncountAttempt('never-counted', t);
    expect(await store.countAttempt('never-counted', t, spec)).toMatchObject({ count: 1 });
  });

  it('keeps a gate shut until the latest time asked, and lets one caller through an open gate', async () => {
    expect(await store.holdGate('g1', t, t + 1000)).toEqual({ held: true, openAtMs: t + 1000 });
    expect(await store.holdGate('g1', t, t + 500)).toEqual({ held: true, openAtMs: t + 1000 });
    expect(await store.holdGate('g1', t + 10, t + 2000, { ifOpen: true })).toEqual({ held: false, openAtMs: t + 1000 });
    const racing = await Promise.all(
      Array.from({ length: 5 }, () => store.holdGate('g1', t + 1000, t + 3000, { ifOpen: true })),
    );
    expect(racing.filter((hold) => hold.held)).toHaveLength(1);
    expect(racing.every((hold) => hold.openAtMs === t + 3000)).toBe(true);
    // A time already past leaves the gate open.
    expect((await store.holdGate('g2', t, t - 1, { ifOpen: true })).held).toBe(true);
    expect((await store.holdGate('g2', t, t + 1, { ifOpen: true })).held).toBe(true);
  });

  it('answers ping while open', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await sleep(10);
  }
}
