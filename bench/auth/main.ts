/**
 * bench/auth: what authentication costs on one control-plane process.
 *
 * Measures an authenticated tenant RPC (ApiKeyService/ListApiKeys over
 * Connect JSON, keep-alive HTTP/1.1) with an API key and with a JWT, and the
 * floor: the same RPC on a process whose credential check is switched off
 * (a fixed principal), everything else identical (rate limiting, validation,
 * the database query). Also times argon2id hashing with the configured
 * parameters. Real PostgreSQL and Redis; a fresh database and key prefix.
 *
 *   npm run bench:auth -- [--seconds 10] [--concurrency 16]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import argon2 from 'argon2';
import { loadConfig } from '../../src/config.js';
import { createBenchDatabase, deleteRedisKeys } from '../streams/backing-services.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    'database-url': {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    },
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const RPC = 'switchboard.v1.ApiKeyService/ListApiKeys';
const serverMain = fileURLToPath(new URL('./server.ts', import.meta.url));

interface Result {
  label: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

async function main(): Promise<void> {
  const runId = randomBytes(4).toString('hex');
  const database = await createBenchDatabase(values['database-url'], `sb_bench_${runId}`);
  const prefix = `sb-bench-${runId}:`;
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    REDIS_URL: values['redis-url'],
    REDIS_KEY_PREFIX: prefix,
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: 'warn',
    // Limits far above what one process serves: they still run (a Redis call per request) but never refuse.
    RATE_LIMIT_FREE_PER_MINUTE: '10000000',
    RATE_LIMIT_ANONYMOUS_PER_MINUTE: '10000000',
  };
  let server: ChildProcess | undefined;
  try {
    // 1. The real process: set up a tenant, an API key and a JWT, then measure both.
    const real = await startServer(env);
    server = real.child;
    const base = `http://127.0.0.1:${real.port}`;
    const signUp = await post(base, 'switchboard.v1.AuthService/SignUp', {
      email: `bench-${runId}@example.com`,
      password: 'benchmark-password-123',
      displayName: 'bench',
      tenantName: 'bench',
    });
    const jwt = signUp.tokens.accessToken as string;
    const key = await post(
      base,
      'switchboard.v1.ApiKeyService/CreateApiKey',
      { name: 'bench', role: 'ROLE_DEVELOPER' },
      jwt,
    );
    const results: Result[] = [];
    results.push(await measure('API key (Bearer sb_live_...)', base, key.secret as string));
    results.push(await measure('JWT access token', base, jwt));
    await stopServer(real.child);

    // 2. The floor: same database and RPC, credential check switched off.
    const principal = {
      kind: 'user',
      userId: signUp.user.id,
      tenantId: signUp.tenant.id,
      role: 'OWNER',
      plan: 'free',
      platformAdmin: false,
      sessionId: '00000000-0000-4000-8000-000000000000',
    };
    const floor = await startServer({ ...env, BENCH_FLOOR_PRINCIPAL: JSON.stringify(principal) });
    server = floor.child;
    const floorResult = await measure('floor (authentication off)', `http://127.0.0.1:${floor.port}`, 'ignored');
    await stopServer(floor.child);
    server = undefined;

    const hash = await argon2Timing();
    report([floorResult, ...results], floorResult, hash);
  } finally {
    if (server) await stopServer(server);
    await database.drop();
    await deleteRedisKeys(values['redis-url'], prefix);
  }
}

async function measure(label: string, base: string, credential: string): Promise<Result> {
  const run = async (durationMs: number, record: boolean) => {
    const latencies: number[] = [];
    let errors = 0;
    const deadline = performance.now() + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const started = performance.now();
          const response = await fetch(`${base}/${RPC}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
            body: '{"pageSize":1}',
          });
          await response.arrayBuffer();
          if (response.status !== 200) errors++;
          if (record) latencies.push(performance.now() - started);
        }
      }),
    );
    return { latencies, errors };
  };
  await run(2000, false); // warm-up: JIT, caches, connection pool
  const { latencies, errors } = await run(seconds * 1000, true);
  if (errors > 0) throw new Error(`${label}: ${errors} requests failed; the figures would be meaningless`);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return { label, requests: latencies.length, errors, rps: latencies.length / seconds, p50: pct(50), p99: pct(99) };
}

async function argon2Timing(): Promise<{ ms: number; params: string }> {
  const { argon2: params } = loadConfig({}).auth;
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    await argon2.hash(`password-${i}`, {
      type: argon2.argon2id,
      memoryCost: params.memoryCostKiB,
      timeCost: params.timeCost,
      parallelism: params.parallelism,
    });
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return {
    ms: times[Math.floor(times.length / 2)] ?? NaN,
    params: `m=${params.memoryCostKiB} KiB, t=${params.timeCost}, p=${params.parallelism}`,
  };
}

function report(results: Result[], floor: Result, hash: { ms: number; params: string }): void {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rows = [
    line(['variant', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'req/s vs floor', 'p50 vs floor', 'p99 vs floor']),
    line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
    ...results.map((r) =>
      line([
        r.label,
        String(r.requests),
        r.rps.toFixed(0),
        r.p50.toFixed(2),
        r.p99.toFixed(2),
        (r.rps / floor.rps).toFixed(2),
        (r.p50 / floor.p50).toFixed(2),
        (r.p99 / floor.p99).toFixed(2),
      ]),
    ),
  ];
  process.stdout.write(
    `\nbench/auth: ${RPC} over Connect JSON, ${concurrency} concurrent clients, ${seconds} s per variant\n\n${rows.join('\n')}\n\n` +
      `argon2id hash (${hash.params}): ${hash.ms.toFixed(1)} ms median of 20\n`,
  );
}

async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', serverMain], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /READY (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  return { child, port };
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(base: string, path: string, body: unknown, token?: string): Promise<any> {
  const response = await fetch(`${base}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json: unknown = await response.json();
  if (response.status !== 200) throw new Error(`${path} failed: ${JSON.stringify(json)}`);
  return json;
}

await main();
