/**
 * bench/schedule (end to end): how fast the control plane places sessions
 * that tenants create, through the real path: CreateSession over gRPC (API
 * key, quota check under the tenant's row lock, insert), the placement round
 * (PENDING rows locked SKIP LOCKED, the fleet read, planBatch, each worker's
 * row locked and its free slots counted, the placements committed), and the
 * AssignSession down each worker's stream.
 *
 * One control plane in a child process on real PostgreSQL (a throwaway
 * database) and Redis (a fresh key prefix); N in-process agents (agent/
 * agent.ts, real gRPC streams, the sandbox engine) in this process, whose
 * engines are instrumented to time when each session reaches its worker.
 * The bench fires `--sessions` CreateSession calls, `--concurrency` at a
 * time, and waits until every session is running on a worker. It then checks
 * through ListSessions that every session has a worker, the one that opened
 * it, and that no worker holds more than its capacity.
 *
 *   npm run bench:schedule:e2e -- [--sessions 2000] [--agents 10] [--tenants 1] [--concurrency 64]
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Agent } from '../../agent/agent.js';
import { defaultBackoff } from '../../lib/backoff.js';
import { createSandboxEngine } from '../../agent/engines/sandbox.engine.js';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import { SessionStatus, type Session } from '../../gen/switchboard/v1/session_pb.js';
import { forEachBounded } from '../harness/bounded.js';
import { startControlPlaneRun, UNREACHABLE_RATE_LIMITS } from '../harness/control-plane-run.js';
import { guarded, withTimeout } from '../harness/interrupt.js';
import { CpuWindow, distribution, pct, type Distribution } from '../harness/measure.js';
import { markdownTable } from '../harness/report.js';
import { runBench, type BenchOutcome, type BenchReport, type BenchRun } from '../harness/run.js';
import { signUpTenant, type BenchTenant } from '../harness/tenant.js';
import { e2eOptions, type E2eOptions } from './e2e.options.js';
import { PlacementProbe } from './placement-probe.js';

const AGENT_CONNECT_TIMEOUT_MS = 30_000;
const PLACED_STATUSES = new Set([SessionStatus.STARTING, SessionStatus.SCAN_QR, SessionStatus.WORKING]);

/** One CreateSession call: when it was sent and when its answer came back (performance.now()). */
interface Created {
  id: string;
  sentAtMs: number;
  answeredAtMs: number;
}

async function measurePlacement(options: E2eOptions, run: BenchRun): Promise<BenchOutcome> {
  const { progress, workDir } = run;
  const cp = await startControlPlaneRun(run, options, {
    SESSION_QUOTA_FREE: String(options.sessions),
    ...UNREACHABLE_RATE_LIMITS,
  });

  const tenants: BenchTenant[] = [];
  for (let i = 0; i < options.tenants; i++) {
    tenants.push(await guarded(signUpTenant(cp.httpUrl, cp.grpcUrl, `schedule-${i}`), cp.failed));
  }
  progress(`${tenants.length} tenant(s) signed up, each with a DEVELOPER API key`);

  const probe = new PlacementProbe(options.agents);
  const agents: Agent[] = [];
  run.defer(async () => {
    await Promise.all(agents.map((agent) => agent.stop()));
  });
  const agentLog = pino({ level: 'warn', base: { pid: process.pid } }, pino.destination(join(workDir, 'agents.log')));
  for (let i = 0; i < options.agents; i++) {
    const name = `schedule-e2e-${String(i).padStart(3, '0')}`;
    agents.push(
      new Agent(
        {
          controlPlaneAddress: cp.grpcAddress,
          workerName: name,
          capacity: options.capacity,
          labels: { bench: 'schedule-e2e' },
          engines: ['SANDBOX'],
          version: '0.1.0-bench',
          backoff: defaultBackoff,
          keepaliveTimeMs: 20_000,
          keepaliveTimeoutMs: 10_000,
          welcomeTimeoutMs: 10_000,
          joinToken: cp.joinToken,
          credentialFile: join(workDir, `${name}.credential`),
          drainTimeoutMs: 5_000,
          engineFactory: () => probe.wrap(i, createSandboxEngine()),
        },
        agentLog.child({ worker: name }),
      ),
    );
  }
  for (const agent of agents) agent.start();
  await guarded(
    withTimeout(
      Promise.all(agents.map((agent) => agent.connected())),
      AGENT_CONNECT_TIMEOUT_MS,
      `agents welcomed: not within ${AGENT_CONNECT_TIMEOUT_MS} ms`,
    ),
    cp.failed,
  );
  const agentByWorker = new Map(agents.map((agent, index) => [agent.workerId, index]));
  progress(`${agents.length} agents welcomed; settling 2 s`);
  await guarded(sleep(2000), cp.failed);

  // ---- the measured phase: creates, placement, assignment ----
  const commitsBefore = await cp.databaseCommits();
  const cpu = await CpuWindow.start({ 'control plane': [cp.pid] }, () => cp.databaseBackends());
  const created: Created[] = [];
  const createErrors = new Map<string, number>();
  let createsDone = false;
  const placed = probe.until(() => createsDone && created.every((c) => probe.placements.has(c.id)));
  const firstCreateAtMs = performance.now();
  const ticker = setInterval(
    () => progress(`${created.length} created, ${probe.placements.size} at their workers`),
    5000,
  );
  try {
    await guarded(
      forEachBounded(
        Array.from({ length: options.sessions }, (_, i) => i),
        options.concurrency,
        async (i) => {
          const tenant = tenants[i % tenants.length] as BenchTenant;
          const sentAtMs = performance.now();
          try {
            const { session } = await tenant.sessions.createSession(
              { name: `s-${String(i).padStart(6, '0')}`, engine: Engine.SANDBOX },
              { timeoutMs: 60_000 },
            );
            if (!session) throw new Error('CreateSession returned no session');
            created.push({ id: session.id, sentAtMs, answeredAtMs: performance.now() });
          } catch (error) {
            const key = error instanceof Error ? error.message : String(error);
            createErrors.set(key, (createErrors.get(key) ?? 0) + 1);
          }
        },
      ),
      cp.failed,
    );
    const createsDoneAtMs = performance.now();
    createsDone = true;
    placed.poke();
    progress(
      `${created.length} created in ${((createsDoneAtMs - firstCreateAtMs) / 1000).toFixed(2)} s; waiting for placement`,
    );
    const remainingMs = options.timeoutS * 1000 - (performance.now() - firstCreateAtMs);
    await guarded(
      withTimeout(
        placed.reached,
        Math.max(0, remainingMs),
        `every session at its worker within ${options.timeoutS} s: not within ${Math.max(0, remainingMs)} ms`,
      ),
      cp.failed,
    );
    const allPlacedAtMs = Math.max(...created.map((c) => probe.placements.get(c.id)?.atMs ?? NaN));
    const figures = await cpu.end();
    clearInterval(ticker);
    // The counters are published about once a second: let the last placements' commits show.
    await guarded(sleep(1500), cp.failed);
    const commits = (await cp.databaseCommits()) - commitsBefore;

    // ---- checks, against what the control plane says ----
    const listed = await guarded(listAll(tenants), cp.failed);
    const problems: string[] = [];
    for (const [message, n] of createErrors) problems.push(`${n} CreateSession calls failed: ${message}`);
    const perWorker = new Map<string, number>();
    let unplaced = 0;
    let misplaced = 0;
    for (const session of listed) {
      if (!session.workerId || !PLACED_STATUSES.has(session.status)) {
        unplaced++;
        continue;
      }
      perWorker.set(session.workerId, (perWorker.get(session.workerId) ?? 0) + 1);
      const agent = probe.placements.get(session.id)?.agent;
      if (agent === undefined || agentByWorker.get(session.workerId) !== agent) misplaced++;
    }
    if (listed.length !== options.sessions) {
      problems.push(`ListSessions shows ${listed.length} sessions, not ${options.sessions}`);
    }
    if (unplaced > 0) problems.push(`${unplaced} sessions without a worker (or not STARTING/SCAN_QR/WORKING)`);
    if (misplaced > 0) problems.push(`${misplaced} sessions whose worker is not the agent that opened them`);
    const overDb = [...perWorker.values()].filter((n) => n > options.capacity).length;
    const overAgent = probe.maxHeld.filter((n) => n > options.capacity).length;
    if (overDb > 0) problems.push(`${overDb} workers over capacity according to ListSessions`);
    if (overAgent > 0) problems.push(`${overAgent} agents held more than their capacity at some point`);
    const loads = agents.map((agent) => perWorker.get(agent.workerId) ?? 0);

    const lastCreateAtMs = Math.max(...created.map((c) => c.answeredAtMs));
    const placedTimes = created
      .map((c) => probe.placements.get(c.id)?.atMs ?? NaN)
      .sort((a, b) => a - b)
      .map((t) => t - firstCreateAtMs);
    const at = (fraction: number) => placedTimes[Math.max(0, Math.ceil(fraction * placedTimes.length) - 1)] ?? NaN;
    const report: Report = {
      options,
      totalS: (allPlacedAtMs - firstCreateAtMs) / 1000,
      createsS: (lastCreateAtMs - firstCreateAtMs) / 1000,
      tailS: (allPlacedAtMs - lastCreateAtMs) / 1000,
      steadyRate: (0.8 * placedTimes.length) / ((at(0.9) - at(0.1)) / 1000),
      createLatency: distribution(created.map((c) => c.answeredAtMs - c.sentAtMs)),
      toWorker: distribution(created.map((c) => (probe.placements.get(c.id)?.atMs ?? NaN) - c.sentAtMs)),
      afterAnswer: distribution(created.map((c) => (probe.placements.get(c.id)?.atMs ?? NaN) - c.answeredAtMs)),
      created: created.length,
      opens: probe.opens,
      loads,
      overDb,
      overAgent,
      listed: listed.length,
      unplaced,
      cpu: figures,
      commits,
    };
    return { report: formatReport(report), problems };
  } finally {
    clearInterval(ticker);
    placed.cancel();
  }
}

/** Every session of every tenant, through ListSessions (pages of 1,000). */
async function listAll(tenants: readonly BenchTenant[]): Promise<Session[]> {
  const all: Session[] = [];
  for (const tenant of tenants) {
    let pageToken = '';
    do {
      const page = await tenant.sessions.listSessions({ pageSize: 1000, pageToken }, { timeoutMs: 30_000 });
      all.push(...page.sessions);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
  }
  return all;
}

interface Report {
  options: E2eOptions;
  /** First CreateSession sent -> last session at its worker. */
  totalS: number;
  createsS: number;
  /** Last CreateSession answered -> last session at its worker. */
  tailS: number;
  /** Placements per second between 10% and 90% placed. */
  steadyRate: number;
  createLatency: Distribution;
  /** CreateSession sent -> the session opened on its worker. */
  toWorker: Distribution;
  /** CreateSession answered -> the session opened on its worker. */
  afterAnswer: Distribution;
  created: number;
  opens: number;
  loads: number[];
  overDb: number;
  overAgent: number;
  listed: number;
  unplaced: number;
  cpu: Awaited<ReturnType<CpuWindow['end']>>;
  /**
   * PostgreSQL transactions committed in the run's database from the first
   * create to 1.5 s after the last placement; a statement outside a
   * transaction counts as one.
   */
  commits: number;
}

function formatReport(r: Report): BenchReport {
  const o = r.options;
  const ms = (d: Distribution) => `${d.p50.toFixed(0)} / ${d.p99.toFixed(0)} / ${d.max.toFixed(0)}`;
  const rows: [string, string][] = [
    ['sessions created (CreateSession, gRPC, API key)', `${r.created} of ${o.sessions}`],
    ['**first create -> every session at its worker (s)**', `**${r.totalS.toFixed(2)}**`],
    ['**sessions placed per second (overall)**', `**${(r.created / r.totalS).toFixed(0)}**`],
    ['placed per second between 10% and 90% placed', r.steadyRate.toFixed(0)],
    [
      'creates: all answered after (s) / creates per second',
      `${r.createsS.toFixed(2)} / ${(r.created / r.createsS).toFixed(0)}`,
    ],
    ['last create answered -> last session at its worker (s)', r.tailS.toFixed(2)],
    ['CreateSession latency p50 / p99 / max (ms)', ms(r.createLatency)],
    ['create sent -> at its worker p50 / p99 / max (ms)', ms(r.toWorker)],
    ['create answered -> at its worker p50 / p99 / max (ms)', ms(r.afterAnswer)],
    ['AssignSession openings / sessions', `${r.opens} / ${r.created}`],
    ['sessions per worker min / max (capacity)', `${Math.min(...r.loads)} / ${Math.max(...r.loads)} (${o.capacity})`],
    ['workers over capacity (ListSessions / agents)', `${r.overDb} / ${r.overAgent}`],
    ['sessions listed / without a worker', `${r.listed} / ${r.unplaced}`],
    ['CPU control plane (% of one core)', pct(r.cpu.groups['control plane'] ?? NaN)],
    [
      'control plane CPU per session (ms)',
      ((((r.cpu.groups['control plane'] ?? NaN) / 100) * (r.cpu.wallMs / 1000) * 1000) / r.created).toFixed(2),
    ],
    ['CPU PostgreSQL backends of the run', pct(r.cpu.postgres)],
    ['PostgreSQL transactions per session (xact_commit)', (r.commits / r.created).toFixed(2)],
    ['CPU Redis (whole server)', pct(r.cpu.redis)],
    ['CPU bench process (clients + in-process agents)', pct(r.cpu.bench)],
    ['CPU other processes / whole machine', `${pct(r.cpu.others)} / ${pct(r.cpu.machine)}`],
    ['bench event-loop delay p99 (ms)', r.cpu.loopDelayP99Ms.toFixed(1)],
  ];
  return {
    title:
      `bench/schedule e2e: ${o.sessions} sessions from ${o.tenants} tenant(s), ${o.concurrency} CreateSession in flight; ` +
      `${o.agents} in-process agents x capacity ${o.capacity}`,
    body: ['', ...markdownTable(['figure', 'value'], 'lr', rows), ''].join('\n'),
  };
}

await runBench({
  name: 'bench:schedule:e2e',
  options: e2eOptions,
  describe: (o) =>
    `${o.sessions} sessions from ${o.tenants} tenant(s), ${o.concurrency} creates in flight; ` +
    `${o.agents} in-process agents of capacity ${o.capacity}`,
  services: (o) => o,
  workDir: true,
  profile: (o) => o.profile,
  run: measurePlacement,
});
