import type { CpuFigures } from '../harness/measure.js';
import { bold, fixed, floorHeader, markdownTable, ratio } from '../harness/report.js';
import type { BenchReport } from '../harness/run.js';
import type { SendLoadResult } from './send-load.js';
import type { SetupFigures } from './working-sessions.js';

/** One side of the comparison: what the load saw and what it cost. */
export interface SideFigures {
  load: SendLoadResult;
  cpu: CpuFigures;
  /**
   * PostgreSQL transactions committed in the run's database over the window
   * (NaN for the floor); a statement outside a transaction counts as one.
   */
  commits: number;
}

/** Everything the report prints besides the two sides. */
export interface RunFacts {
  sessions: number;
  agents: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  setup: SetupFigures;
  /** The control plane side over 3 s with every session WORKING and nothing sent. */
  idle: CpuFigures;
  /** Seconds from the window's end until the last 100 messages of the window were all READ; undefined if not. */
  receiptsReadS: number | undefined;
}

export function throughput(side: SideFigures): number {
  return side.load.completed / (side.load.windowMs / 1000);
}

export function formatReport(cp: SideFigures, floor: SideFigures, facts: RunFacts): BenchReport {
  const cpRate = throughput(cp);
  const floorRate = throughput(floor);
  const errors = (side: SideFigures) => [...side.load.errors.values()].reduce((a, b) => a + b, 0);
  const cpuPerSend = (side: SideFigures, group: string) =>
    ((side.cpu.groups[group] ?? NaN) / 100 / throughput(side)) * 1e6;
  const rows: string[][] = [
    ['SendText answered OK in the window', String(cp.load.completed), String(floor.load.completed), ''],
    ['throughput (sends/s)', fixed(cpRate, 0), fixed(floorRate, 0), ratio(cpRate, floorRate)].map(bold),
    [
      'latency p50 (ms)',
      fixed(cp.load.latency.p50, 2),
      fixed(floor.load.latency.p50, 2),
      ratio(cp.load.latency.p50, floor.load.latency.p50),
    ].map(bold),
    [
      'latency p99 (ms)',
      fixed(cp.load.latency.p99, 2),
      fixed(floor.load.latency.p99, 2),
      ratio(cp.load.latency.p99, floor.load.latency.p99),
    ].map(bold),
    ['latency max (ms)', fixed(cp.load.latency.max, 1), fixed(floor.load.latency.max, 1), ''],
    ['errors (warm-up and window)', String(errors(cp)), String(errors(floor)), ''],
    [
      'CPU server (% of one core)',
      fixed(cp.cpu.groups.server ?? NaN, 0),
      fixed(floor.cpu.groups.server ?? NaN, 0),
      ratio(cp.cpu.groups.server ?? NaN, floor.cpu.groups.server ?? NaN),
    ],
    [
      'CPU server per send (µs)',
      fixed(cpuPerSend(cp, 'server'), 0),
      fixed(cpuPerSend(floor, 'server'), 0),
      ratio(cpuPerSend(cp, 'server'), cpuPerSend(floor, 'server')),
    ],
    [
      `CPU ${facts.agents} agents (% of one core) / per send (µs)`,
      `${fixed(cp.cpu.groups.agents ?? NaN, 0)} / ${fixed(cpuPerSend(cp, 'agents'), 0)}`,
      `${fixed(floor.cpu.groups.agents ?? NaN, 0)} / ${fixed(cpuPerSend(floor, 'agents'), 0)}`,
      '',
    ],
    ['CPU PostgreSQL backends of the run', fixed(cp.cpu.postgres, 0), 'n/a', ''],
    ['PostgreSQL transactions per send (xact_commit)', fixed(cp.commits / cp.load.completed, 2), 'n/a', ''],
    ['CPU Redis (whole server)', fixed(cp.cpu.redis, 0), fixed(floor.cpu.redis, 0), ''],
    [
      'CPU load generator / its loop delay p99 (ms)',
      `${fixed(cp.cpu.bench, 0)} / ${fixed(cp.cpu.loopDelayP99Ms, 1)}`,
      `${fixed(floor.cpu.bench, 0)} / ${fixed(floor.cpu.loopDelayP99Ms, 1)}`,
      '',
    ],
    [
      'CPU other processes / whole machine',
      `${fixed(cp.cpu.others, 0)} / ${fixed(cp.cpu.machine, 0)}`,
      `${fixed(floor.cpu.others, 0)} / ${fixed(floor.cpu.machine, 0)}`,
      '',
    ],
  ];
  const errorLines = (name: string, side: SideFigures) =>
    [...side.load.errors].map(([message, n]) => `  ${name}: ${n} x ${message}`);
  return {
    title:
      `bench/send: SendText through ${facts.sessions} WORKING sandbox sessions on ${facts.agents} agent processes; ` +
      `${facts.concurrency} calls in flight (gRPC, API key), ${facts.warmupS} s warm-up, ${facts.durationS} s window`,
    body: [
      `set-up: ${facts.sessions} sessions created in ${fixed(facts.setup.createdS, 1)} s, all WORKING after ` +
        `${fixed(facts.setup.workingS, 1)} s (${facts.setup.scans} ScanQr calls, ${facts.setup.scanRetries} refused and retried)`,
      `idle with every session WORKING, before sending (% of one core): control plane ${fixed(facts.idle.groups.server ?? NaN, 1)}, ` +
        `${facts.agents} agents ${fixed(facts.idle.groups.agents ?? NaN, 1)}, PostgreSQL backends ${fixed(facts.idle.postgres, 1)}`,
      '',
      ...markdownTable(floorHeader('control plane', 'floor'), 'lrrr', rows),
      '',
      facts.receiptsReadS === undefined
        ? 'receipts: the last 100 messages of the window were NOT all READ within 60 s'
        : `receipts: the last 100 messages of the window were all READ ${fixed(facts.receiptsReadS, 1)} s after the window closed`,
      ...(errors(cp) + errors(floor) > 0
        ? ['errors:', ...errorLines('control plane', cp), ...errorLines('floor', floor)]
        : ['errors: none']),
      '',
    ].join('\n'),
  };
}
