import os from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

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
 * happened since the last one.
 */
export class MetricsCollector {
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly sessionCount: () => number = () => 0) {
    this.loopDelay.enable();
  }

  sample(): MetricsSample {
    const now = performance.now();
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
      cpuPercent: round(((cpu.user + cpu.system) / elapsedMicros) * 100),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      loadAverage: [round(one), round(five), round(fifteen)],
      freeMemoryBytes: os.freemem(),
      totalMemoryBytes: os.totalmem(),
      eventLoopLagMs: Number.isFinite(lagNs) ? round(lagNs / 1e6) : 0,
      sessionCount: this.sessionCount(),
      cpuCount: os.availableParallelism(),
    };
  }

  close(): void {
    this.loopDelay.disable();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
