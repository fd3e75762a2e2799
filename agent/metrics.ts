import os from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { systemClock, type Clock } from '../lib/clock.js';

/** One reading of the agent's own resource use (mirrors ResourceMetrics in the API). */
export interface MetricsSample {
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  loadAverage: [number, number, number];
  freeMemoryBytes: number;
  totalMemoryBytes: number;
  eventLoopLagMs: number;
  sessionCount: number;
  cpuCount: number;
}

/**
 * Reads real process and host metrics. CPU and event-loop lag are measured
 * over the interval since the previous sample, so each heartbeat reports what
 * happened since the last one; the interval is measured on the agent's
 * injected clock, like every other duration it measures.
 */
export class MetricsCollector {
  private lastCpu = process.cpuUsage();
  private lastAt: number;
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor(
    private readonly sessionCount: () => number = () => 0,
    private readonly clock: Clock = systemClock,
  ) {
    this.lastAt = clock.monotonicMs();
    this.loopDelay.enable();
  }

  sample(): MetricsSample {
    const now = this.clock.monotonicMs();
    const cpu = process.cpuUsage(this.lastCpu);
    const elapsedMicros = Math.max(1, (now - this.lastAt) * 1000);
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    const memory = process.memoryUsage();
    const [one = 0, five = 0, fifteen = 0] = os.loadavg();
    // The histogram reports nanoseconds; NaN before the first measurement.
    const lagNs = this.loopDelay.percentile(99);
    this.loopDelay.reset();
    return {
      cpuPercent: reading(((cpu.user + cpu.system) / elapsedMicros) * 100, MAX_PERCENT_OR_LOAD),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      loadAverage: [
        reading(one, MAX_PERCENT_OR_LOAD),
        reading(five, MAX_PERCENT_OR_LOAD),
        reading(fifteen, MAX_PERCENT_OR_LOAD),
      ],
      freeMemoryBytes: os.freemem(),
      totalMemoryBytes: os.totalmem(),
      eventLoopLagMs: reading(lagNs / 1e6, MAX_LAG_MS),
      sessionCount: this.sessionCount(),
      cpuCount: os.availableParallelism(),
    };
  }

  close(): void {
    this.loopDelay.disable();
  }
}

// Upper bounds of ResourceMetrics in fleet.proto: the control plane ends the
// stream of an agent whose heartbeat breaks them.
const MAX_PERCENT_OR_LOAD = 1_000_000;
const MAX_LAG_MS = 86_400_000;

/**
 * A reading as the control plane accepts it: finite, from 0 to `max`,
 * rounded to hundredths. What the OS or a histogram could not measure
 * (NaN before the first measurement, say) reads as 0, never as NaN.
 */
export function reading(value: number, max: number): number {
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(max, Math.round(value * 100) / 100);
}

/** A sample as the Heartbeat's ResourceMetrics. */
export function toResourceMetrics(sample: MetricsSample) {
  return {
    cpuPercent: sample.cpuPercent,
    rssBytes: BigInt(sample.rssBytes),
    heapUsedBytes: BigInt(sample.heapUsedBytes),
    heapTotalBytes: BigInt(sample.heapTotalBytes),
    loadAverage1m: sample.loadAverage[0],
    loadAverage5m: sample.loadAverage[1],
    loadAverage15m: sample.loadAverage[2],
    freeMemoryBytes: BigInt(sample.freeMemoryBytes),
    totalMemoryBytes: BigInt(sample.totalMemoryBytes),
    eventLoopLagMs: sample.eventLoopLagMs,
    sessionCount: sample.sessionCount,
    cpuCount: sample.cpuCount,
  };
}
