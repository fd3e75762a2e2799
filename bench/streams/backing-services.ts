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
 * Creates `name` on the server behind `adminUrl`. A fresh database per run
 * means the control plane migrates from scratch and no earlier run's
 * workers or dead rows skew what it reads.
 */
export async function createBenchDatabase(adminUrl: string, name: string): Promise<BenchDatabase> {
  if (!/^sb_bench_[a-z0-9]+$/.test(name)) throw new Error(`refusing to manage database ${name}: not a bench name`);
  await runAdmin(adminUrl, `create database "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => runAdmin(adminUrl, `drop database if exists "${name}" with (force)`),
  };
}

async function runAdmin(adminUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Deletes every key under the run's prefix; returns how many there were. */
export async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
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
