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
import { join } from 'node:path';
import argon2 from 'argon2';
import { loadConfig } from '../../src/config.js';
import { createBackingServices } from '../harness/backing-services.js';
import { startControlPlane, UNREACHABLE_RATE_LIMITS, type ControlPlane } from '../harness/control-plane-run.js';
import { backingServiceFlags, defineOptions, integer, type OptionValues } from '../harness/options.js';
import { markdownTable, ratio } from '../harness/report.js';
import { runBench, type BenchOutcome, type BenchReport, type BenchRun } from '../harness/run.js';

const RPC = 'switchboard.v1.ApiKeyService/ListApiKeys';

const flags = {
  seconds: integer({ help: 'measured per variant, after a 2 s warm-up', unit: 's', default: 10, min: 1, max: 3600 }),
  concurrency: integer({ help: 'concurrent keep-alive clients', default: 16, min: 1, max: 1000 }),
  ...backingServiceFlags(),
};
type AuthOptions = OptionValues<typeof flags>;

interface Result {
  label: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

async function measureAuth(options: AuthOptions, run: BenchRun): Promise<BenchOutcome> {
  const backing = await createBackingServices({ ...options, runId: run.runId, progress: run.progress });
  run.defer(() => backing.dispose());
  const env: Record<string, string> = {
    ...backing.env,
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: 'warn',
    ...UNREACHABLE_RATE_LIMITS,
  };
  const start = async (name: string, extra: Record<string, string> = {}): Promise<ControlPlane> => {
    const server = await startControlPlane({
      name,
      entry: new URL('./server.ts', import.meta.url),
      env: { ...env, ...extra },
      logFile: join(run.workDir, `${name.replace(/\W+/g, '-')}.log`),
    });
    run.defer(() => server.stop());
    return server;
  };

  // 1. The real process: set up a tenant, an API key and a JWT, then measure both.
  const real = await start('control plane');
  const signUp = await post(real.httpUrl, 'switchboard.v1.AuthService/SignUp', {
    email: `bench-${run.runId}@example.com`,
    password: 'benchmark-password-123',
    displayName: 'bench',
    tenantName: 'bench',
  });
  const jwt = signUp.tokens.accessToken as string;
  const key = await post(
    real.httpUrl,
    'switchboard.v1.ApiKeyService/CreateApiKey',
    { name: 'bench', role: 'ROLE_DEVELOPER' },
    jwt,
  );
  const results: Result[] = [];
  results.push(await measure('API key (Bearer sb_live_...)', real.httpUrl, key.secret as string, options));
  results.push(await measure('JWT access token', real.httpUrl, jwt, options));
  await real.stop();

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
  const floor = await start('floor', { BENCH_FLOOR_PRINCIPAL: JSON.stringify(principal) });
  const floorResult = await measure('floor (authentication off)', floor.httpUrl, 'ignored', options);
  await floor.stop();

  const hash = await argon2Timing();
  return { report: report([floorResult, ...results], floorResult, hash, options) };
}

async function measure(
  label: string,
  base: string,
  credential: string,
  { seconds, concurrency }: AuthOptions,
): Promise<Result> {
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

function report(
  results: Result[],
  floor: Result,
  hash: { ms: number; params: string },
  options: AuthOptions,
): BenchReport {
  const table = markdownTable(
    ['variant', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'req/s vs floor', 'p50 vs floor', 'p99 vs floor'],
    'lrrrrrrr',
    results.map((r) => [
      r.label,
      String(r.requests),
      r.rps.toFixed(0),
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      ratio(r.rps, floor.rps, { suffix: '' }),
      ratio(r.p50, floor.p50, { suffix: '' }),
      ratio(r.p99, floor.p99, { suffix: '' }),
    ]),
  );
  return {
    title: `bench/auth: ${RPC} over Connect JSON, ${options.concurrency} concurrent clients, ${options.seconds} s per variant`,
    body: `\n${table.join('\n')}\n\nargon2id hash (${hash.params}): ${hash.ms.toFixed(1)} ms median of 20\n`,
  };
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

await runBench({
  name: 'bench:auth',
  options: defineOptions({ command: 'npm run bench:auth', flags }),
  describe: (o) => `${RPC}, ${o.concurrency} clients, ${o.seconds} s per variant`,
  services: (o) => o,
  workDir: true,
  run: measureAuth,
});
