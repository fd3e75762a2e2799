/**
 * bench/schedule (pure scheduler): how fast src/scheduling/scheduler.ts places
 * sessions, with no database, network or control plane in the way, and how
 * even the load it leaves is.
 *
 * A seeded, heterogeneous fleet (capacities, engines, zones, a few cordoned
 * and offline workers, optionally heartbeat metrics) and a seeded stream of
 * requests from tenants of very different sizes (some with a zone constraint,
 * some with a zone affinity) go through planBatch, which places them in order,
 * each seeing the ones before it. It reports placements/s, and the load
 * (assigned / capacity) of the workers that could take sessions: max / mean.
 * For comparison it also times placeSession one request at a time (the
 * fleet compiled again for every request) on the first requests.
 *
 *   npm run bench:schedule:pure -- [--workers 1000] [--sessions 100000] [--tenants 2000]
 *                                  [--seed 1] [--runs 3] [--metrics] [--per-call 2000]
 */
import type { EngineKind } from '../../src/fleet/worker.entity.js';
import {
  placeSession,
  planBatch,
  type FleetView,
  type FleetWorker,
  type PlacementRequest,
} from '../../src/scheduling/scheduler.js';
import { boolean, defineOptions, integer, type OptionValues } from '../harness/options.js';
import { cpuPercent, readMachineBusySeconds } from '../harness/proc-stats.js';
import { runBench, type BenchOutcome, type BenchRun } from '../harness/run.js';

const flags = {
  workers: integer({ help: 'workers in the fleet', default: 1000, min: 1, max: 1_000_000 }),
  sessions: integer({ help: 'sessions placed', default: 100_000, min: 1, max: 10_000_000 }),
  tenants: integer({ help: 'tenants the sessions belong to', default: 2000, min: 1, max: 1_000_000 }),
  seed: integer({ help: 'seed of the fleet and the requests', default: 1, min: 0, max: 2 ** 32 - 1 }),
  runs: integer({ help: 'planBatch runs timed', default: 3, min: 1, max: 100 }),
  metrics: boolean({ help: 'give each worker a fixed heartbeat reading (CPU, memory)' }),
  perCall: integer({
    help: 'first requests also placed one placeSession call at a time',
    default: 2000,
    min: 1,
    max: 10_000_000,
  }),
};
type PureOptions = OptionValues<typeof flags>;

/** mulberry32: a small seeded generator, so every run places the same sessions on the same fleet. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ZONES = ['eu-1a', 'eu-1b', 'eu-1c', 'us-1a'];

function makeFleet(next: () => number, options: PureOptions): FleetWorker[] {
  return Array.from({ length: options.workers }, (_, i): FleetWorker => {
    const roll = next();
    const engines: EngineKind[] = roll < 0.6 ? ['SANDBOX', 'BAILEYS'] : roll < 0.8 ? ['BAILEYS'] : ['SANDBOX'];
    const state = next();
    const zone = next() < 0.9 ? ZONES[Math.floor(next() * ZONES.length)] : undefined;
    const load = {
      cpuPercent: 5 + next() * 60,
      freeMemoryBytes: (0.2 + next() * 0.7) * 8 * 2 ** 30,
      totalMemoryBytes: 8 * 2 ** 30,
    };
    return {
      id: `worker-${String(i).padStart(5, '0')}`,
      name: `worker-${i}`,
      status: state < 0.02 ? 'OFFLINE' : 'ONLINE',
      schedulability: state >= 0.02 && state < 0.05 ? 'CORDONED' : 'ACTIVE',
      capacity: 100 + Math.floor(next() * 201),
      supportedEngines: engines,
      labels: zone ? { zone } : {},
      assignedSessions: 0,
      // Drawn either way, so --metrics changes only the metrics, not the fleet.
      metrics: options.metrics ? load : null,
    };
  });
}

function makeRequests(next: () => number, options: PureOptions): PlacementRequest[] {
  return Array.from({ length: options.sessions }, (_, i) => {
    // Squaring skews tenant sizes: tenant 0 holds about 2% of all sessions, the last about 0.025%.
    const tenant = Math.floor(next() ** 2 * options.tenants);
    const engine: EngineKind = next() < 0.8 ? 'BAILEYS' : 'SANDBOX';
    const kind = next();
    const zone = ZONES[Math.floor(next() * 3)] as string;
    return {
      sessionId: `session-${i}`,
      tenantId: `tenant-${tenant}`,
      engine,
      constraints: kind < 0.1 ? [{ key: 'zone', op: 'equals', value: zone }] : [],
      affinities:
        kind >= 0.1 && kind < 0.2 ? [{ requirement: { key: 'zone', op: 'equals', value: zone }, weight: 50 }] : [],
    };
  });
}

function measureScheduler(options: PureOptions, bench: BenchRun): BenchOutcome {
  const { sessions: sessionCount, runs } = options;
  const perCallCount = Math.min(options.perCall, sessionCount);
  const next = random(options.seed);
  const workers = makeFleet(next, options);
  const view: FleetView = { workers, maintenance: false };
  const requests = makeRequests(next, options);

  let plan: ReturnType<typeof planBatch> | undefined;
  const timings: { wallMs: number; cpuMs: number }[] = [];
  const runLines: string[] = [];
  for (let run = 0; run < runs; run++) {
    plan = undefined; // let the previous run's results go before timing the next
    const busyBefore = readMachineBusySeconds();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    plan = planBatch(view, requests);
    const ms = performance.now() - started;
    const ours = process.cpuUsage(cpuBefore);
    const others = cpuPercent(busyBefore, readMachineBusySeconds(), ms) - ((ours.user + ours.system) / 1000 / ms) * 100;
    const cpuMs = (ours.user + ours.system) / 1000;
    timings.push({ wallMs: ms, cpuMs });
    runLines.push(
      `planBatch run ${run + 1}: ${(ms / 1000).toFixed(3)} s, ${Math.round(sessionCount / (ms / 1000)).toLocaleString('en')} placements/s; ` +
        `CPU ${(cpuMs / 1000).toFixed(3)} s (other processes: ${Math.max(0, others).toFixed(0)}% of one core)`,
    );
    bench.progress(runLines.at(-1) ?? '');
  }
  if (!plan) throw new Error('no planBatch run');

  // The same decisions one call at a time, the fleet compiled again for each: what a naive caller pays.
  let current = workers.map((w) => ({ ...w }));
  const byId = new Map(current.map((w, i) => [w.id, i]));
  const started = performance.now();
  for (const request of requests.slice(0, perCallCount)) {
    const result = placeSession({ workers: current, maintenance: false }, request);
    if (result.placed) {
      const i = byId.get(result.workerId) as number;
      current = current.slice();
      current[i] = {
        ...(current[i] as FleetWorker),
        assignedSessions: (current[i] as FleetWorker).assignedSessions + 1,
      };
    }
  }
  const perCallMs = performance.now() - started;

  const placed = plan.results.filter((r) => r.placed).length;
  const usable = plan.workers.filter((w) => w.status === 'ONLINE' && w.schedulability === 'ACTIVE');
  const over = plan.workers.filter((w) => w.assignedSessions > w.capacity).length;
  const unusableUsed = plan.workers.filter((w) => !usable.includes(w) && w.assignedSessions > 0).length;
  const loadOf = (group: readonly FleetWorker[]) => {
    const loads = group.map((w) => w.assignedSessions / w.capacity);
    const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
    return { mean, max: Math.max(...loads), min: Math.min(...loads) };
  };
  const all = loadOf(usable);
  const middle = <T>(xs: T[], by: (x: T) => number): T => [...xs].sort((a, b) => by(a) - by(b))[xs.length >> 1] as T;
  const median = middle(timings, (t) => t.wallMs).wallMs;
  const medianCpu = middle(timings, (t) => t.cpuMs).cpuMs;
  const lines = [
    '',
    `placed ${placed.toLocaleString('en')} of ${sessionCount.toLocaleString('en')}; over capacity: ${over}; on unschedulable workers: ${unusableUsed}`,
    `planBatch median of ${runs}: ${(median / 1000).toFixed(3)} s total, ${Math.round(sessionCount / (median / 1000)).toLocaleString('en')} placements/s, ${((median * 1000) / sessionCount).toFixed(2)} µs per placement`,
    `planBatch CPU time, median of ${runs}: ${(medianCpu / 1000).toFixed(3)} s, ${((medianCpu * 1000) / sessionCount).toFixed(2)} µs of CPU per placement`,
    `placeSession per call (first ${perCallCount.toLocaleString('en')}): ${((perCallMs * 1000) / perCallCount).toFixed(1)} µs per placement, ${Math.round(perCallCount / (perCallMs / 1000)).toLocaleString('en')} placements/s`,
    `load (assigned / capacity) over ${usable.length} schedulable workers: mean ${all.mean.toFixed(4)}, min ${all.min.toFixed(4)}, max ${all.max.toFixed(4)}, max/mean ${(all.max / all.mean).toFixed(4)}`,
  ];
  for (const engines of [['SANDBOX', 'BAILEYS'], ['BAILEYS'], ['SANDBOX']] as const) {
    const group = usable.filter(
      (w) => w.supportedEngines.length === engines.length && engines.every((e) => w.supportedEngines.includes(e)),
    );
    const load = loadOf(group);
    lines.push(
      `  workers running ${engines.join(' and ')} only (${group.length}): mean ${load.mean.toFixed(4)}, max/mean ${(load.max / load.mean).toFixed(4)}`.replace(
        'SANDBOX and BAILEYS only',
        'both engines',
      ),
    );
  }
  const problems =
    over > 0 || unusableUsed > 0
      ? ['a worker was given more than its capacity, or an unschedulable worker got work']
      : [];
  return {
    report: {
      title:
        `bench/schedule pure: ${options.workers} workers, ${sessionCount} sessions, ${options.tenants} tenants, ` +
        `seed ${options.seed}, metrics ${options.metrics ? 'on' : 'off'}`,
      body: `${['', ...runLines, ...lines].join('\n')}\n`,
    },
    problems,
  };
}

await runBench({
  name: 'bench:schedule:pure',
  options: defineOptions({ command: 'npm run bench:schedule:pure', flags }),
  describe: (o) => `${o.workers} workers, ${o.sessions} sessions, ${o.tenants} tenants, ${o.runs} runs`,
  run: measureScheduler,
});
