import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * Real PostgreSQL and Redis for integration tests. Each test file gets its
 * own database and Redis key prefix, created here and dropped afterwards, so
 * runs never collide with each other or with a developer's data.
 */
export const TEST_POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** This run's DATA_DIR (global-setup.ts makes it): generated keys of each test database go under it. */
export const TEST_DATA_DIR = process.env.DATA_DIR ?? join(tmpdir(), 'switchboard-test-data');

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sb_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await admin(`create database "${name}"`);
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  };
}

export function uniqueRedisPrefix(): string {
  return `sb-test:${Date.now().toString(36)}:${randomBytes(4).toString('hex')}:`;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
