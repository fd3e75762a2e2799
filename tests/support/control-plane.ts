import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/platform/logger.js';
import { createTestDatabase, TEST_REDIS_URL, uniqueRedisPrefix } from './services.js';

/** A control plane started in-process on free ports, with what the test needs to reach and stop it. */
export interface TestControlPlane {
  app: App;
  httpUrl: string;
  grpcUrl: string;
  /** host:port for grpc-js clients. */
  grpcAddress: string;
  close(): Promise<void>;
}

/**
 * Starts a control plane on real PostgreSQL (a fresh database) and real Redis
 * (a fresh key prefix), or on the embedded defaults with `embedded: true`.
 */
export async function startControlPlane(
  options: { env?: Record<string, string>; embedded?: boolean } = {},
): Promise<TestControlPlane> {
  const database = options.embedded ? undefined : await createTestDatabase();
  const prefix = uniqueRedisPrefix();
  const dataDir = options.embedded ? mkdtempSync(join(tmpdir(), 'sb-test-')) : undefined;
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...(database ? { DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
    ...(dataDir ? { DATA_DIR: dataDir } : {}),
    ...options.env,
  });
  const logger = createLogger({ level: config.logLevel, pretty: false, name: 'control-plane' });
  const app = await createApp(config, { logger });
  const urls = await app.start();
  return {
    app,
    httpUrl: `http://127.0.0.1:${urls.httpPort}`,
    grpcUrl: `http://127.0.0.1:${urls.grpcPort}`,
    grpcAddress: `127.0.0.1:${urls.grpcPort}`,
    async close() {
      await app.close();
      await database?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (!options.embedded) await deleteRedisKeys(prefix);
    },
  };
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Polls `probe` until it returns a value (not undefined) or the time runs out. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `condition not met within ${timeoutMs} ms${lastError instanceof Error ? `: ${lastError.message}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Calls a Connect unary RPC with plain JSON over HTTP/1.1, as curl would. */
export async function postJson(
  baseUrl: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}
