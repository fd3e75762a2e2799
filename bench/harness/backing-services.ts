import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';

/** A throwaway PostgreSQL database for one run. */
export interface BenchDatabase {
  name: string;
  /** Connection string the control plane is given. */
  url: string;
  /** Drops it, ending whatever sessions are still attached. */
  drop(): Promise<void>;
}

/**
 * One run's share of the machine's PostgreSQL and Redis: a fresh database and
 * a fresh key prefix, so the control plane migrates from scratch and no
 * earlier run's workers, leases or dead rows skew what it reads.
 */
export interface BackingServices {
  database: BenchDatabase;
  redisUrl: string;
  keyPrefix: string;
  /** DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX and DATA_DIR (the run's generated keys) for the control plane. */
  env: Record<string, string>;
  description: string;
  /** The PostgreSQL backends (pids) connected to the run's database now, for CPU accounting. */
  databaseBackends: () => Promise<number[]>;
  /**
   * Transactions committed in the run's database so far (pg_stat_database;
   * backends publish their counts about once a second, so take differences
   * over many seconds).
   */
  databaseCommits: () => Promise<number>;
  /** Drops the database and deletes the keys; says what it removed. */
  dispose(): Promise<void>;
}

/**
 * Fails with one clear line when PostgreSQL or Redis (whichever is given)
 * does not answer, before the run spends minutes getting to them.
 */
export async function ensureServices(services: { postgresUrl?: string; redisUrl?: string }): Promise<void> {
  if (services.postgresUrl !== undefined) {
    const url = services.postgresUrl;
    await adminQuery(url, 'select 1', []).catch((error: unknown) => {
      throw new Error(`PostgreSQL does not answer at ${url} (${reason(error)}): start it, or pass --postgres-url`);
    });
  }
  if (services.redisUrl !== undefined) {
    const url = services.redisUrl;
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // The socket's own error says more than the "Connection is closed." that connect() rejects with.
    let socketError: unknown;
    redis.on('error', (error) => (socketError ??= error));
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      throw new Error(
        `Redis does not answer at ${url} (${reason(socketError ?? error)}): start it, or pass --redis-url`,
      );
    } finally {
      redis.disconnect();
    }
  }
}

/** A fresh database `sb_bench_<runId>` and key prefix `sb-bench-<runId>:` on the machine's servers. */
export async function createBackingServices(options: {
  postgresUrl: string;
  redisUrl: string;
  runId: string;
  progress: (message: string) => void;
}): Promise<BackingServices> {
  const database = await createBenchDatabase(options.postgresUrl, `sb_bench_${options.runId}`);
  const keyPrefix = `sb-bench-${options.runId}:`;
  const { postgresUrl, redisUrl } = options;
  const dataDir = mkdtempSync(join(tmpdir(), `sb-bench-${options.runId}-`));
  return {
    database,
    redisUrl,
    keyPrefix,
    env: { DATABASE_URL: database.url, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: keyPrefix, DATA_DIR: dataDir },
    description: `PostgreSQL (database ${database.name}) + Redis (prefix ${keyPrefix})`,
    databaseBackends: async () =>
      (
        await adminQuery<{ pid: number }>(postgresUrl, 'select pid from pg_stat_activity where datname = $1', [
          database.name,
        ])
      ).map((row) => row.pid),
    databaseCommits: async () => {
      const [row] = await adminQuery<{ commits: string }>(
        postgresUrl,
        'select xact_commit as commits from pg_stat_database where datname = $1',
        [database.name],
      );
      return Number(row?.commits ?? NaN);
    },
    dispose: async () => {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
      const deleted = await deleteRedisKeys(redisUrl, keyPrefix);
      options.progress(`dropped database ${database.name}; deleted ${deleted} Redis keys under ${keyPrefix}`);
    },
  };
}

/** Creates `name` on the server behind `adminUrl`; refuses any name that is not a bench's. */
async function createBenchDatabase(adminUrl: string, name: string): Promise<BenchDatabase> {
  if (!/^sb_bench_[a-z0-9]+$/.test(name)) throw new Error(`refusing to manage database ${name}: not a bench name`);
  await adminQuery(adminUrl, `create database "${name}"`, []);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => void (await adminQuery(adminUrl, `drop database if exists "${name}" with (force)`, [])),
  };
}

/** Deletes every key under the run's prefix; returns how many there were. */
async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
  if (!/^sb-bench-[a-z0-9]+:$/.test(prefix))
    throw new Error(`refusing to delete keys under ${prefix}: not a bench prefix`);
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** One statement on its own connection: the benches' administrative queries are few and far between. */
async function adminQuery<Row extends pg.QueryResultRow>(adminUrl: string, text: string, values: unknown[]) {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}

function reason(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(reason).join(', ');
  return error instanceof Error ? error.message || error.constructor.name : String(error);
}
