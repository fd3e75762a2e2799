import { Redis } from 'ioredis';
import { StartupError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { AttemptCount, AttemptCounterSpec, CoordinationStore, GateHold, SlotClaim } from './coordination-store.js';

// Compare-and-set scripts: a lease is only touched by the holder it names,
// atomically, so a replica that lost a lease can never extend or delete the
// new holder's.
const ACQUIRE = `
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

// The lease value is "<holder> <token>"; the token counter (KEYS[2]) never
// goes back, even when the lease expires, so tokens order terms.
const LEAD = `
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ' ', 1, true)
  if string.sub(current, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(current, sep + 1))
  end
  return -1
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token`;
const RESIGN = `
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0`;

// Slot sets are sorted sets of member -> expiry (wall-clock ms). All claims
// are checked before any is taken, in one script, so a caller never holds a
// slot of one set while refused by another. ARGV: member, now, expiry, then
// one limit per key. Returns 0, or the 1-based index of the full set. The
// set itself expires with its last slot, so idle callers leave no keys.
const ACQUIRE_SLOTS = `
local member, now, expiry = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, member) == false and redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, member)
  if redis.call('PTTL', key) < expiry - now then redis.call('PEXPIRE', key, expiry - now) end
end
return 0`;
const RENEW_SLOT = `
if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1]) == 1 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0`;
// Attempt counters: a hash of count, window end and block end, all on the
// caller's clock (ARGV[1]); the Redis TTL only collects the key once it is
// dead. ARGV: now, window, limit (-1: none), block (0: until the window ends).
const COUNT_ATTEMPT = `
local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'count', 'resetAt', 'blockedUntil')
local count = tonumber(state[1]) or 0
local resetAt = tonumber(state[2]) or 0
local blockedUntil = tonumber(state[3]) or 0
if now < blockedUntil then return {0, count, blockedUntil, resetAt} end
if now >= resetAt then
  count = 0
  resetAt = now + tonumber(ARGV[2])
end
local limit = tonumber(ARGV[3])
local allowed = 1
if limit >= 0 and count >= limit then
  allowed = 0
  if tonumber(ARGV[4]) > 0 then resetAt = now + tonumber(ARGV[4]) end
  blockedUntil = resetAt
else
  count = count + 1
end
redis.call('HSET', KEYS[1], 'count', count, 'resetAt', resetAt, 'blockedUntil', blockedUntil)
redis.call('PEXPIRE', KEYS[1], math.max(1, resetAt - now))
if allowed == 1 then return {1, count, 0, resetAt} end
return {0, count, blockedUntil, resetAt}`;
const UNCOUNT_ATTEMPT = `
local state = redis.call('HMGET', KEYS[1], 'count', 'resetAt')
if (tonumber(state[1]) or 0) > 0 and tonumber(ARGV[1]) < (tonumber(state[2]) or 0) then
  redis.call('HINCRBY', KEYS[1], 'count', -1)
end
return 0`;
// A gate is the time it opens. ARGV: now, until, "1" to hold it only if open.
const HOLD_GATE = `
local now = tonumber(ARGV[1])
local openAt = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[3] == '1' and openAt > now then return {0, openAt} end
local untilMs = tonumber(ARGV[2])
if untilMs > openAt then
  if untilMs > now then redis.call('SET', KEYS[1], ARGV[2], 'PX', untilMs - now) end
  openAt = untilMs
end
return {1, openAt}`;

/** The commands defineCommand adds to the client. */
interface LeaseScripts {
  acquireLease(key: string, holder: string, ttlMs: number): Promise<number>;
  renewLease(key: string, holder: string, ttlMs: number): Promise<number>;
  releaseLease(key: string, holder: string): Promise<number>;
  acquireLeadership(key: string, fenceKey: string, holder: string, ttlMs: number): Promise<number>;
  releaseLeadership(key: string, holder: string): Promise<number>;
  /** numberOfKeys, then the keys, then ARGV (the slot script takes any number of keys). */
  acquireSlots(numberOfKeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  countAttempt(key: string, nowMs: number, windowMs: number, limit: number, blockMs: number): Promise<number[]>;
  uncountAttempt(key: string, nowMs: number): Promise<number>;
  holdGate(key: string, nowMs: number, untilMs: number, ifOpen: string): Promise<number[]>;
}

/** Options for connecting the Redis adapter. */
export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  logger: Logger;
  connectTimeoutMs?: number;
}

/**
 * Redis adapter of the coordination store; lets several control-plane
 * replicas share leases and route commands to each other.
 */
export class RedisCoordinationStore implements CoordinationStore {
  readonly kind = 'redis' as const;
  private subscriber: Redis | undefined;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  /** SUBSCRIBE commands in flight by channel: a second subscriber waits for the first's, too. */
  private readonly subscribing = new Map<string, Promise<unknown>>();

  // The lease scripts as commands: ioredis sends EVALSHA (the script's hash)
  // instead of the script text on every heartbeat.
  private readonly scripts: LeaseScripts;

  private constructor(
    private readonly client: Redis,
    private readonly options: RedisStoreOptions,
  ) {
    client.defineCommand('acquireLease', { numberOfKeys: 1, lua: ACQUIRE });
    client.defineCommand('renewLease', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('releaseLease', { numberOfKeys: 1, lua: RELEASE });
    client.defineCommand('acquireLeadership', { numberOfKeys: 2, lua: LEAD });
    client.defineCommand('releaseLeadership', { numberOfKeys: 1, lua: RESIGN });
    client.defineCommand('acquireSlots', { lua: ACQUIRE_SLOTS });
    client.defineCommand('renewSlot', { numberOfKeys: 1, lua: RENEW_SLOT });
    client.defineCommand('countAttempt', { numberOfKeys: 1, lua: COUNT_ATTEMPT });
    client.defineCommand('uncountAttempt', { numberOfKeys: 1, lua: UNCOUNT_ATTEMPT });
    client.defineCommand('holdGate', { numberOfKeys: 1, lua: HOLD_GATE });
    this.scripts = client as unknown as LeaseScripts;
  }

  /** Connects and proves the server answers, or fails with one line that says how to fix it. */
  static async connect(options: RedisStoreOptions): Promise<RedisCoordinationStore> {
    const timeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    // Until Redis has answered once, connection errors are start-up's to
    // report (one line, below), not a warning each retry.
    let firstError: unknown;
    let ready = false;
    const client = createClient(options, (error) => {
      firstError ??= error;
      return !ready;
    });
    let deadline: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect().then(() => client.ping()),
        new Promise((_, reject) => {
          // A server that accepts the connection but never answers must not hang start-up.
          deadline = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      ready = true;
    } catch (cause) {
      client.disconnect();
      throw new StartupError(
        `Cannot reach Redis at ${redactUrl(options.url)} (${describe(firstError ?? cause)}). ` +
          'Start Redis there, fix REDIS_URL, or unset REDIS_URL to use the in-process store (single replica only).',
      );
    } finally {
      clearTimeout(deadline);
    }
    return new RedisCoordinationStore(client, options);
  }

  async acquireLease(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.scripts.acquireLease(this.key(key), holder, ttlMs)) === 1;
  }

  async forceLease(key: string, holder: string, ttlMs: number): Promise<void> {
    await this.client.set(this.key(key), holder, 'PX', ttlMs);
  }

  async renewLease(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.scripts.renewLease(this.key(key), holder, ttlMs)) === 1;
  }

  async releaseLease(key: string, holder: string): Promise<boolean> {
    return (await this.scripts.releaseLease(this.key(key), holder)) === 1;
  }

  async readLeases(keys: readonly string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    return this.client.mget(...keys.map((key) => this.key(key)));
  }

  async acquireLeadership(key: string, holder: string, ttlMs: number): Promise<number | null> {
    if (holder.includes(' ')) throw new Error('a leadership holder id cannot contain spaces');
    const token = await this.scripts.acquireLeadership(this.key(key), this.key(`${key}:fence`), holder, ttlMs);
    return token < 0 ? null : token;
  }

  async releaseLeadership(key: string, holder: string): Promise<void> {
    await this.scripts.releaseLeadership(this.key(key), holder);
  }

  async acquireSlots(
    claims: readonly SlotClaim[],
    member: string,
    nowMs: number,
    expiresAtMs: number,
  ): Promise<string | null> {
    if (claims.length === 0) return null;
    const full = await this.scripts.acquireSlots(
      claims.length,
      ...claims.map((claim) => this.key(claim.key)),
      member,
      nowMs,
      expiresAtMs,
      ...claims.map((claim) => claim.limit),
    );
    return full === 0 ? null : (claims[full - 1]?.key ?? null);
  }

  async renewSlots(
    slots: readonly { key: string; member: string }[],
    nowMs: number,
    expiresAtMs: number,
  ): Promise<void> {
    if (slots.length === 0) return;
    // One round trip for every slot this replica holds; the key's TTL follows its newest slot.
    const ttlMs = Math.max(1, expiresAtMs - nowMs);
    const pipeline = this.client.pipeline();
    for (const { key, member } of slots) {
      (pipeline as unknown as SlotPipeline).renewSlot(this.key(key), member, expiresAtMs, ttlMs);
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed?.[0]) throw failed[0];
  }

  async releaseSlots(keys: readonly string[], member: string): Promise<void> {
    if (keys.length === 0) return;
    const pipeline = this.client.pipeline();
    for (const key of keys) pipeline.zrem(this.key(key), member);
    await pipeline.exec();
  }

  async countSlots(key: string, nowMs: number): Promise<number> {
    return this.client.zcount(this.key(key), `(${nowMs}`, '+inf');
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(this.key(channel), message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const subscriber = await this.subscriberConnection();
    const name = this.key(channel);
    let handlers = this.handlers.get(name);
    if (!handlers) {
      handlers = new Set();
      this.handlers.set(name, handlers);
      const subscribing = subscriber.subscribe(name).finally(() => this.subscribing.delete(name));
      this.subscribing.set(name, subscribing);
      await subscribing;
    } else {
      // Resolve only once the channel's subscription is active (the contract), not while it is on its way.
      await this.subscribing.get(name);
    }
    handlers.add(onMessage);
    return async () => {
      const current = this.handlers.get(name);
      if (!current) return;
      current.delete(onMessage);
      if (current.size === 0) {
        this.handlers.delete(name);
        await subscriber.unsubscribe(name);
      }
    };
  }

  async countAttempt(key: string, nowMs: number, spec: AttemptCounterSpec): Promise<AttemptCount> {
    const [allowed, count, retryAtMs, windowEndsAtMs] = await this.scripts.countAttempt(
      this.key(`attempts:${key}`),
      Math.round(nowMs),
      Math.round(spec.windowMs),
      spec.limit ?? -1,
      Math.round(spec.blockMs ?? 0),
    );
    return {
      allowed: allowed === 1,
      count: count ?? 0,
      retryAtMs: retryAtMs ?? 0,
      windowEndsAtMs: windowEndsAtMs ?? 0,
    };
  }

  async uncountAttempt(key: string, nowMs: number): Promise<void> {
    await this.scripts.uncountAttempt(this.key(`attempts:${key}`), Math.round(nowMs));
  }

  async clearAttempts(key: string): Promise<void> {
    await this.client.del(this.key(`attempts:${key}`));
  }

  async holdGate(key: string, nowMs: number, untilMs: number, options: { ifOpen?: boolean } = {}): Promise<GateHold> {
    const [held, openAtMs] = await this.scripts.holdGate(
      this.key(`gate:${key}`),
      Math.round(nowMs),
      Math.round(untilMs),
      options.ifOpen ? '1' : '0',
    );
    return { held: held === 1, openAtMs: openAtMs ?? 0 };
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await Promise.allSettled([this.client.quit(), this.subscriber?.quit()]);
  }

  private key(name: string): string {
    return `${this.options.keyPrefix}${name}`;
  }

  // Subscribing puts a Redis connection into subscriber mode, so pub/sub
  // gets a second connection, opened on first use.
  private async subscriberConnection(): Promise<Redis> {
    if (this.subscriber) return this.subscriber;
    const subscriber = createClient(this.options);
    subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel) ?? []) handler(message);
    });
    await subscriber.connect();
    this.subscriber = subscriber;
    return subscriber;
  }
}

/** The slot-renewal script as a pipeline command. */
interface SlotPipeline {
  renewSlot(key: string, member: string, expiresAtMs: number, ttlMs: number): void;
}

/** How long start-up waits for Redis to answer. */
const CONNECT_TIMEOUT_MS = 3000;

/** `quiet` says whether a connection error is already reported elsewhere (start-up) and needs no warning. */
function createClient(options: RedisStoreOptions, quiet: (error: Error) => boolean = () => false): Redis {
  const client = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 2,
    // Reconnect forever after start-up, with a capped delay; start-up itself
    // fails fast through connect() above.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  client.on('error', (error: Error) => {
    if (quiet(error)) return;
    options.logger.warn({ err: describe(error) }, 'redis connection error');
  });
  return client;
}

function describe(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(describe).join(', ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
