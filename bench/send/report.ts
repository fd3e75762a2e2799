import type { CpuFigures, Distribution } from '../harness/measure.js';
import { bold, fixed, markdownTable, ratio } from '../harness/report.js';
import type { BenchReport } from '../harness/run.js';
import type { SendLoadResult } from './send-load.js';
import type { OpenLoopResult } from './open-loop.js';
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

/** One open-loop step at the control plane. */
export interface StepFigures {
  /** The offered rate as a fraction of the floor's. */
  fraction: number;
  ratePerS: number;
  load: OpenLoopResult;
  cpu: CpuFigures;
  /** PostgreSQL transactions committed in the run's database over the window. */
  commits: number;
  /** Seconds from the window's end until its last 100 messages were READ; undefined if not within 60 s. */
  readLagS: number | undefined;
  /** Acceptance (created_at) to DELIVERED (delivered_at) of a sample of the window's messages. */
  toDelivered: Distribution;
}

/** Receipts kept up: every offered call accepted and the window's last messages READ within 2 s of its end. */
export function sustained(step: StepFigures): boolean {
  return (
    step.load.accepted === step.load.offered &&
    step.load.skipped === 0 &&
    step.readLagS !== undefined &&
    step.readLagS <= 2
  );
}

/** Everything the report prints besides the steps and the floor. */
export interface RunFacts {
  sessions: number;
  agents: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  setup: SetupFigures;
  /** The control plane side over 3 s with every session WORKING and nothing sent. */
  idle: CpuFigures;
}

export function throughput(side: SideFigures): number {
  return side.load.completed / (side.load.windowMs / 1000);
}

export function formatReport(steps: readonly StepFigures[], floor: SideFigures, facts: RunFacts): BenchReport {
  const floorRate = throughput(floor);
  const floorCpuPerSend = ((floor.cpu.groups.server ?? NaN) / 100 / floorRate) * 1e6;
  const acceptedRate = (step: StepFigures) => step.load.accepted / (step.load.windowMs / 1000);
  const cpuPerSend = (step: StepFigures, group: string) =>
    ((step.cpu.groups[group] ?? NaN) / 100 / acceptedRate(step)) * 1e6;
  const errors = (map: Map<string, number>) => [...map.values()].reduce((a, b) => a + b, 0);
  const best = [...steps].reverse().find(sustained);
  const rows: string[][] = steps.map((step) => [
    `${step.fraction}x = ${step.ratePerS}/s`,
    `${step.load.accepted}/${step.load.offered}${step.load.skipped > 0 ? ` (${step.load.skipped} not sent: 4096 in flight)` : ''}`,
    `${fixed(step.load.acceptance.p50, 1)} / ${fixed(step.load.acceptance.p99, 1)}`,
    `${fixed(step.toDelivered.p50, 0)} / ${fixed(step.toDelivered.p99, 0)} (n=${step.toDelivered.count})`,
    step.readLagS === undefined ? '> 60' : fixed(step.readLagS, 1),
    `${fixed(cpuPerSend(step, 'server'), 0)} (${ratio(cpuPerSend(step, 'server'), floorCpuPerSend)})`,
    fixed(cpuPerSend(step, 'agents'), 0),
    fixed(step.cpu.postgres, 0),
    fixed(step.commits / Math.max(1, step.load.accepted), 2),
    fixed(step.cpu.machine, 0),
    sustained(step) ? bold('yes') : 'no',
  ]);
  const errorLines = steps.flatMap((step) =>
    [...step.load.errors].map(([message, n]) => `  ${step.fraction}x: ${n} x ${message}`),
  );
  return {
    title:
      `bench/send: SendText through ${facts.sessions} WORKING sandbox sessions on ${facts.agents} agent processes ` +
      `(gRPC, API key), open-loop steps of ${facts.durationS} s against the floor's closed-loop rate`,
    body: [
      `set-up: ${facts.sessions} sessions created in ${fixed(facts.setup.createdS, 1)} s, all WORKING after ` +
        `${fixed(facts.setup.workingS, 1)} s (${facts.setup.scans} ScanQr calls, ${facts.setup.scanRetries} refused and retried)`,
      `idle with every session WORKING, before sending (% of one core): control plane ${fixed(facts.idle.groups.server ?? NaN, 1)}, ` +
        `${facts.agents} agents ${fixed(facts.idle.groups.agents ?? NaN, 1)}, PostgreSQL backends ${fixed(facts.idle.postgres, 1)}`,
      `floor (bare relay, ${facts.concurrency} calls in flight, ${facts.warmupS} s warm-up): ${fixed(floorRate, 0)} sends/s, ` +
        `latency p50 ${fixed(floor.load.latency.p50, 2)} ms / p99 ${fixed(floor.load.latency.p99, 2)} ms, ` +
        `server CPU ${fixed(floorCpuPerSend, 0)} µs per send, ${errors(floor.load.errors)} errors`,
      '',
      ...markdownTable(
        [
          'offered',
          'accepted',
          'acceptance p50 / p99 (ms)',
          'to DELIVERED p50 / p99 (ms)',
          'last READ after window (s)',
          'CP CPU/msg µs (vs floor)',
          'agents CPU/msg µs',
          'PG CPU %',
          'PG xacts/msg',
          'machine CPU %',
          'sustained',
        ],
        'lrrrrrrrrrl',
        rows,
      ),
      '',
      best
        ? bold(
            `sustained: ${fixed(acceptedRate(best), 0)} sends/s with receipts kept up = ${ratio(acceptedRate(best), floorRate)} the floor's rate; ` +
              `control-plane CPU per message ${ratio(cpuPerSend(best, 'server'), floorCpuPerSend)} the floor's; acceptance p99 ${fixed(best.load.acceptance.p99, 1)} ms`,
          )
        : bold('sustained: no step kept up'),
      ...(errorLines.length > 0 || errors(floor.load.errors) > 0
        ? ['errors:', ...errorLines, ...[...floor.load.errors].map(([message, n]) => `  floor: ${n} x ${message}`)]
        : ['errors: none']),
      '',
    ].join('\n'),
  };
}
