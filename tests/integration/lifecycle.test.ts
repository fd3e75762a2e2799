import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../lib/logger.js';
import { createTestAgent, waitForExit } from '../support/agents.js';
import { eventually, login, postJson } from '../support/control-plane.js';
import {
  createTestDatabase,
  TEST_DATA_DIR,
  TEST_POSTGRES_URL,
  TEST_REDIS_URL,
  uniqueRedisPrefix,
  type TestDatabase,
} from '../support/services.js';

const mainTs = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** Runs the control-plane entry point as a user would, collecting its output. */
function startMain(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, output: () => ({ stdout, stderr }) };
}

/** What the whole `npm start` scenario may take on a loaded machine (it takes ~10 s on an idle one). */
const NPM_START_BUDGET_MS = 120_000;

/** `promise`, or a rejection once `timeoutMs` has passed without it settling. */
async function within<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not done within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function withDatabase(url: string, name: string): string {
  const target = new URL(url);
  target.pathname = `/${name}`;
  return target.toString();
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('starting and stopping the control plane', () => {
  it.each([
    [{ HTTP_PORT: 'abc' }, /^switchboard: Invalid configuration: HTTP_PORT: .*\(got "abc"\)$/],
    [
      { LEASE_TTL_MS: '1000', HEARTBEAT_INTERVAL_MS: '2000' },
      /LEASE_TTL_MS: must be at least twice HEARTBEAT_INTERVAL_MS/,
    ],
    [
      { DATABASE_URL: 'mysql://localhost/x' },
      /DATABASE_URL: expected a URL starting with postgres:\/\/ or postgresql:\/\//,
    ],
    [
      { DATABASE_URL: withDatabase(TEST_POSTGRES_URL, 'sb_no_such_database') },
      // The server answers: the fix is to create the database, and the line gives the command.
      /^switchboard: PostgreSQL at .*sb_no_such_database answers, but has no database "sb_no_such_database"\. Create it \(createdb -h \S+ -p \d+( -U \S+)? sb_no_such_database, or in psql: CREATE DATABASE "sb_no_such_database";\)/,
    ],
    [
      { DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/nowhere' },
      /^switchboard: Cannot reach PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nowhere .*unset DATABASE_URL/,
    ],
  ])('refuses to start with %j and says why in one line', async (env, message) => {
    const { child, output } = startMain([], { HTTP_PORT: '0', GRPC_PORT: '0', ...env });
    const { code } = await waitForExit(child);
    expect(code).toBe(1);
    const stderr = output().stderr.trim();
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toContain('secret');
  });

  it('says in one line when Redis cannot be reached', async () => {
    const database = await createTestDatabase();
    try {
      const { child, output } = startMain([], {
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        DATABASE_URL: database.url,
        REDIS_URL: 'redis://127.0.0.1:1',
      });
      expect((await waitForExit(child)).code).toBe(1);
      // One line: no second one from ioredis about the same refused connection.
      expect(output().stderr.trim().split('\n')).toEqual([
        expect.stringMatching(
          /^switchboard: Cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED .*unset REDIS_URL/,
        ),
      ]);
    } finally {
      await database.drop();
    }
  });

  // A server that accepts connections and never answers (a wrong port, a stalled proxy) must
  // fail start-up with the same one line instead of hanging it; the wait is bounded by the
  // connect timeout, not asserted here (a timing rule on real time would be flaky).
  it.each([
    [
      'PostgreSQL',
      (port: number) => ({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test` }),
      /^switchboard: Cannot reach PostgreSQL at .* \(timeout expired\)/,
    ],
    [
      'Redis',
      (port: number) => ({ REDIS_URL: `redis://127.0.0.1:${port}` }),
      /^switchboard: Cannot reach Redis at .* \(no answer within 3000 ms\)/,
    ],
  ])('says in one line when %s accepts the connection but never answers', async (_name, env, message) => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const database = await createTestDatabase();
    try {
      const { child, output } = startMain([], {
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        DATABASE_URL: database.url,
        ...env(port),
      });
      expect((await waitForExit(child)).code).toBe(1);
      expect(output().stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    } finally {
      silent.close();
      await database.drop();
    }
  });

  // A process test, not a timing rule: two tsx processes and an embedded PostgreSQL (WASM,
  // migrated at start) come up in ~10 s on an idle machine and several times that under a full
  // suite. Its waits share one deadline well inside the test's timeout, so a slow run fails
  // naming the step, with the output, and still kills the processes (a vitest timeout would
  // leave them running and loading the machine); polls are spaced so they do not compete with
  // the agent's registration for the embedded database's single connection.
  it(
    'npm start (developer setup) needs nothing installed: embedded database, local agent ONLINE, clean SIGTERM',
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'sb-dev-'));
      const { child, output } = startMain(['--dev'], {
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        DATA_DIR: dataDir,
        LOG_FORMAT: 'json',
        DATABASE_URL: '',
        REDIS_URL: '',
      });
      const deadline = Date.now() + NPM_START_BUDGET_MS;
      const step = async <T>(what: string, work: (timeoutMs: number) => Promise<T>): Promise<T> => {
        try {
          return await work(Math.max(0, deadline - Date.now()));
        } catch (error) {
          const { stdout, stderr } = output();
          throw new Error(
            `${what}: ${error instanceof Error ? error.message : String(error)}\n--- stdout\n${stdout.slice(-3000)}\n--- stderr\n${stderr.slice(-3000)}`,
            { cause: error },
          );
        }
      };
      try {
        const httpUrl = await step('the banner with its URL', (timeoutMs) =>
          eventually(async () => output().stdout.match(/Connect\/HTTP\s+(http:\/\/\S+)/)?.[1], timeoutMs, 250),
        );
        expect(output().stdout).toContain('embedded PostgreSQL');
        expect(output().stdout).toContain('--list-services');
        const [, email = '', password = ''] =
          /Platform admin \(shown once, keep it\): (\S+) \/ (\S+)/.exec(output().stdout) ?? [];
        expect(email).toBe('admin@switchboard.local');
        const token = await login(httpUrl, email, password);
        const worker = await step('the local agent ONLINE with its metrics', (timeoutMs) =>
          eventually(
            async () => {
              const { json } = await postJson(httpUrl, 'switchboard.v1.AdminService/ListWorkers', {}, token);
              const workers = json.workers as
                { id: string; name: string; status: string; metrics?: { rssBytes?: string } }[] | undefined;
              const local = workers?.find((w) => w.name === 'local-agent');
              return local?.status === 'WORKER_STATUS_ONLINE' && Number(local.metrics?.rssBytes) > 0
                ? local
                : undefined;
            },
            timeoutMs,
            250,
          ),
        );
        expect(worker.name).toBe('local-agent');
        expect(output().stdout).toMatch(/draining it stops its sessions until UncordonWorker/);

        // The only worker told to shut down, then removed: the developer setup brings it back each time.
        const localAgent = async (): Promise<{ id: string; status: string; connectedSince?: string } | undefined> => {
          const { json } = await postJson(httpUrl, 'switchboard.v1.AdminService/ListWorkers', {}, token);
          const workers = json.workers as { id: string; name: string; status: string; connectedSince?: string }[];
          return workers.find((w) => w.name === 'local-agent');
        };
        const backOnline = (after: string | undefined) => (timeoutMs: number) =>
          eventually(
            async () => {
              const local = await localAgent();
              return local?.status === 'WORKER_STATUS_ONLINE' && local.connectedSince !== after ? local : undefined;
            },
            timeoutMs,
            250,
          );
        const before = await localAgent();
        await postJson(
          httpUrl,
          'switchboard.v1.AdminService/ShutdownWorker',
          { workerId: worker.id, reason: 'test' },
          token,
        );
        const restarted = await step('the local agent back after ShutdownWorker', backOnline(before?.connectedSince));
        // Only a drained (or offline) worker can be removed; being the last one, it takes force.
        await postJson(
          httpUrl,
          'switchboard.v1.AdminService/DrainWorker',
          { workerId: restarted.id, reason: 'test' },
          token,
        );
        const { json: removed } = await postJson(
          httpUrl,
          'switchboard.v1.AdminService/RemoveWorker',
          { workerId: restarted.id, force: true },
          token,
        );
        expect(removed).toMatchObject({ worker: { status: 'WORKER_STATUS_REMOVED' } });
        await step('the local agent enrolled again after RemoveWorker', backOnline(restarted.connectedSince));
        expect(output().stdout + output().stderr).toMatch(/local agent exited: it was removed from the fleet/);
        child.kill('SIGTERM');
        const { code } = await step('the exit after SIGTERM', (timeoutMs) => within(waitForExit(child), timeoutMs));
        expect(code).toBe(0);
      } finally {
        child.kill('SIGKILL');
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    NPM_START_BUDGET_MS + 30_000,
  );

  describe('graceful shutdown', () => {
    let database: TestDatabase;
    const prefix = uniqueRedisPrefix();
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });

    const boot = async (grpcPort: number) => {
      const config = loadConfig({
        HOST: '127.0.0.1',
        HTTP_PORT: '0',
        GRPC_PORT: String(grpcPort),
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATA_DIR: TEST_DATA_DIR,
        LOG_LEVEL: 'silent',
      });
      const app = await createApp(config, { logger: createLogger({ level: 'silent', pretty: false }) });
      await app.start();
      return app;
    };

    it('ends agent streams so agents reconnect, records them offline, and serves again after restart', async () => {
      const port = await freePort();
      const first = await boot(port);
      const { token } = await first.identity.joinTokens.create(
        first.database.orm.em.fork(),
        undefined,
        { description: 'test', ttlMs: 60_000, maxUses: 1 },
        { ip: 'test', userAgent: 'test' },
      );
      // Single use: the reconnect after the restart must use the stored worker credential.
      const agent = createTestAgent(`127.0.0.1:${port}`, token);
      agent.start();
      await agent.connected();
      const backoff = new Promise<void>((resolve) => agent.on('state', (s) => s === 'backoff' && resolve()));
      await first.close();
      await backoff;

      const db = new pg.Client({ connectionString: database.url });
      await db.connect();
      try {
        const { rows } = await db.query<{ status: string; status_reason: string }>(
          'select status, status_reason from worker where id = $1',
          [agent.workerId],
        );
        expect(rows[0]).toEqual({ status: 'OFFLINE', status_reason: 'control plane replica shutting down' });

        const second = await boot(port);
        const workerId = agent.workerId;
        await agent.connected();
        expect(agent.workerId).toBe(workerId);
        const { rows: after } = await db.query<{ status: string }>('select status from worker where id = $1', [
          workerId,
        ]);
        expect(after[0]?.status).toBe('ONLINE');
        await agent.stop();
        await second.close();
      } finally {
        await db.end();
      }
    });
  });
});
