import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createApp, type App, type AppOverrides } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Clock } from '../../lib/clock.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { createTestDatabase, TEST_DATA_DIR, TEST_REDIS_URL, uniqueRedisPrefix } from './services.js';

/** A control plane started in-process on free ports, with what the test needs to reach and stop it. */
export interface TestControlPlane {
  app: App;
  httpUrl: string;
  grpcUrl: string;
  /** host:port for grpc-js clients. */
  grpcAddress: string;
  /** Access token of a platform admin created for the test. */
  adminToken: string;
  databaseUrl: string;
  redisPrefix: string;
  /** A join token an agent can enrol with (`uses` agents, default 100). */
  joinToken(uses?: number): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts a control plane on real PostgreSQL (a fresh database) and real Redis
 * (a fresh key prefix), or on the embedded defaults with `embedded: true`.
 */
export async function startControlPlane(
  options: {
    env?: Record<string, string>;
    embedded?: boolean;
    replicaOf?: Pick<TestControlPlane, 'databaseUrl' | 'redisPrefix'>;
    /** Clock, scheduler, logger and the like; a ManualScheduler as both clock and scheduler drives time. */
    overrides?: AppOverrides;
    /** A fake clock for timing rules the test drives instead of sleeping. */
    clock?: Clock;
    /** Logs here instead (a test reading what was logged); default per LOG_LEVEL. */
    logger?: Logger;
  } = {},
): Promise<TestControlPlane> {
  // A replica shares the first control plane's database and Redis prefix (and leaves them to it to clean up).
  const owned = options.embedded || options.replicaOf ? undefined : await createTestDatabase();
  const database = options.replicaOf ? { url: options.replicaOf.databaseUrl } : owned;
  const prefix = options.replicaOf?.redisPrefix ?? uniqueRedisPrefix();
  const dataDir = options.embedded ? mkdtempSync(join(tmpdir(), 'sb-test-')) : undefined;
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...(database ? { DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
    DATA_DIR: dataDir ?? TEST_DATA_DIR,
    ...options.env,
  });
  const logger = options.logger ?? createLogger({ level: config.logLevel, pretty: false, name: 'control-plane' });
  const app = await createApp(config, { logger, clock: options.clock, ...options.overrides });
  const urls = await app.start();
  const httpUrl = `http://127.0.0.1:${urls.httpPort}`;
  const admin = { email: `admin-${randomBytes(4).toString('hex')}@test.local`, password: 'correct-horse-battery' };
  await app.identity.auth.ensurePlatformAdmin(app.database.orm.em.fork(), admin);
  const adminToken = await login(httpUrl, admin.email, admin.password);
  return {
    app,
    httpUrl,
    grpcUrl: `http://127.0.0.1:${urls.grpcPort}`,
    grpcAddress: `127.0.0.1:${urls.grpcPort}`,
    adminToken,
    databaseUrl: database?.url ?? '',
    redisPrefix: prefix,
    async joinToken(uses = 100) {
      const { json } = await postJson(
        httpUrl,
        'switchboard.v1.AdminService/CreateJoinToken',
        { maxUses: uses },
        adminToken,
      );
      if (typeof json.token !== 'string') throw new Error(`could not create a join token: ${JSON.stringify(json)}`);
      return json.token;
    },
    async close() {
      await app.close();
      await owned?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (!options.embedded && !options.replicaOf) await deleteRedisKeys(prefix);
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
  token?: string,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${baseUrl}/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...extraHeaders,
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json()) as Record<string, unknown>,
    headers: response.headers,
  };
}

/** Logs in over Connect JSON and returns the access token. */
export async function login(httpUrl: string, email: string, password: string, tenantId = ''): Promise<string> {
  const { json } = await postJson(httpUrl, 'switchboard.v1.AuthService/Login', { email, password, tenantId });
  const tokens = json.tokens as { accessToken?: string } | undefined;
  if (!tokens?.accessToken) throw new Error(`login failed: ${JSON.stringify(json)}`);
  return tokens.accessToken;
}

/** A free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A control plane in its own process (`npm run serve`), so a test can kill it like a crashed replica. */
export interface ControlPlaneProcess {
  child: ChildProcess;
  httpUrl: string;
  grpcAddress: string;
  output(): string;
}

const mainTs = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/**
 * Starts `src/main.ts` on free ports (or `ports`, to restart a killed one
 * where its agents look for it) with `env` (database, Redis, timings) and
 * waits until it is ready.
 */
export async function spawnControlPlaneProcess(
  env: Record<string, string>,
  ports?: { http: number; grpc: number },
): Promise<ControlPlaneProcess & { ports: { http: number; grpc: number } }> {
  const [httpPort, grpcPort] = ports ? [ports.http, ports.grpc] : [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      GRPC_PORT: String(grpcPort),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`control plane exited: ${output}`);
    const response = await fetch(`${httpUrl}/readyz`).catch(() => undefined);
    return response?.ok ? true : undefined;
  }, 30_000);
  return {
    child,
    httpUrl,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    output: () => output,
    ports: { http: httpPort, grpc: grpcPort },
  };
}
