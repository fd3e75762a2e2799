import os from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cpuPercent,
  groupCpuSeconds,
  readCpuSeconds,
  readCpuSecondsByName,
  readMachineBusySeconds,
} from './proc-stats.js';

/** p50, p99 and max of a set of samples (milliseconds); NaN when there are none. */
export interface Distribution {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function distribution(samples: readonly number[]): Distribution {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] ?? NaN) : NaN,
  };
}

/** Nearest-rank percentile of ascending samples; NaN when there are none, so an empty run cannot pass for a fast one. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? Number.NaN;
}

/** The middle value (the mean of the two middle ones for an even count); NaN when there are none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? NaN)
    : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

/** The machine in one line, for every report's header. */
export function describeMachine(): string {
  const model = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.availableParallelism()} vCPU (${model}), ${memory} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/**
 * How busy the machine is before the run starts, in percent of one core.
 * Not guarded: nothing needs cleaning up yet, so Ctrl-C may end the process at once.
 */
export async function measureMachineCpu(overMs: number): Promise<number> {
  const begun = performance.now();
  const before = readMachineBusySeconds();
  await sleep(overMs);
  return cpuPercent(before, readMachineBusySeconds(), performance.now() - begun);
}

/** CPU over a window, in percent of one core (the machine has 100 per vCPU). */
export interface CpuFigures {
  machine: number;
  /** Each named group of processes (e.g. "control plane", "agents"). */
  groups: Record<string, number>;
  /**
   * The PostgreSQL backends serving the run's database (connected at the
   * start or the end of the window); the server's shared background
   * processes are not counted.
   */
  postgres: number;
  /** The whole redis-server process, which other work on the machine may share. */
  redis: number;
  /** This process: the load generator (and, where a bench says so, in-process agents). */
  bench: number;
  /** Whatever else ran on the machine: the whole machine minus all of the above. */
  others: number;
  /** This process's event-loop delay over the window: its timestamps are late by up to this much. */
  loopDelayP99Ms: number;
  wallMs: number;
}

/** Measures CPU of named process groups, PostgreSQL, Redis, this process and the machine over one window. */
export class CpuWindow {
  private readonly startedAt = performance.now();
  private readonly machine = readMachineBusySeconds();
  private readonly self = process.cpuUsage();
  private readonly redis = readCpuSecondsByName(['redis-server']);
  private readonly groupsBefore: Map<string, number>;
  private readonly postgresBefore: Map<number, number>;
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  /**
   * `groups` names the processes to account separately; `postgresPids`
   * lists the run's database backends now (and is asked again at the end).
   */
  private constructor(
    private readonly groups: Record<string, readonly number[]>,
    private readonly postgresPids: () => Promise<number[]>,
    postgresNow: number[],
  ) {
    this.groupsBefore = new Map(Object.entries(groups).map(([name, pids]) => [name, sumCpu(pids)]));
    this.postgresBefore = cpuByPid(postgresNow);
    this.loop.enable();
  }

  static async start(
    groups: Record<string, readonly number[]>,
    postgresPids: () => Promise<number[]> = async () => [],
  ): Promise<CpuWindow> {
    return new CpuWindow(groups, postgresPids, await postgresPids());
  }

  async end(): Promise<CpuFigures> {
    const postgresAfter = cpuByPid(await this.postgresPids());
    this.loop.disable();
    const wallMs = performance.now() - this.startedAt;
    const pct = (seconds: number) => (seconds / (wallMs / 1000)) * 100;
    // A backend seen only at the start and gone by the end is lost (undercounted, never overcounted).
    const postgres = pct(groupCpuSeconds(this.postgresBefore, postgresAfter));
    const redis = pct(groupCpuSeconds(this.redis, readCpuSecondsByName(['redis-server'])));
    const groups: Record<string, number> = {};
    for (const [name, pids] of Object.entries(this.groups)) {
      groups[name] = pct(sumCpu(pids) - (this.groupsBefore.get(name) ?? 0));
    }
    const own = process.cpuUsage(this.self);
    const bench = pct((own.user + own.system) / 1e6);
    const machine = cpuPercent(this.machine, readMachineBusySeconds(), wallMs);
    const accounted = postgres + redis + bench + Object.values(groups).reduce((a, b) => a + b, 0);
    return {
      machine,
      groups,
      postgres,
      redis,
      bench,
      others: Math.max(0, machine - accounted),
      loopDelayP99Ms: this.loop.percentile(99) / 1e6,
      wallMs,
    };
  }
}

function cpuByPid(pids: readonly number[]): Map<number, number> {
  const found = new Map<number, number>();
  for (const pid of pids) {
    try {
      found.set(pid, readCpuSeconds(pid));
    } catch {
      // Ended between listing and reading.
    }
  }
  return found;
}

/** CPU seconds of these processes so far; one that already exited counts as nothing. */
function sumCpu(pids: readonly number[]): number {
  let total = 0;
  for (const seconds of cpuByPid(pids).values()) total += seconds;
  return total;
}

/** Percent of one core, for tables. */
export const pct = (value: number) => (Number.isNaN(value) ? '-' : value.toFixed(0));
