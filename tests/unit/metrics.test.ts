import { describe, expect, it } from 'vitest';
import { MetricsCollector } from '../../agent/metrics.js';
import { ManualClock } from '../../lib/clock.js';

/** Keeps this process busy until it has used `micros` of CPU time. */
function burnCpu(micros: number): void {
  const start = process.cpuUsage();
  const used = () => {
    const { user, system } = process.cpuUsage(start);
    return user + system;
  };
  let x = 0;
  while (used() < micros) x += Math.sqrt(x + 1);
  expect(x).toBeGreaterThan(0);
}

describe('agent metrics collection', () => {
  it('reads real process and host figures', async () => {
    const collector = new MetricsCollector(() => 3);
    // Burn some CPU so the interval has measurable use.
    burnCpu(50_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const sample = collector.sample();
    collector.close();
    expect(sample.cpuPercent).toBeGreaterThan(0);
    expect(sample.cpuPercent).toBeLessThan(100 * sample.cpuCount + 1);
    expect(sample.rssBytes).toBeGreaterThan(1_000_000);
    expect(sample.heapUsedBytes).toBeGreaterThan(0);
    expect(sample.heapTotalBytes).toBeGreaterThanOrEqual(sample.heapUsedBytes);
    expect(sample.totalMemoryBytes).toBeGreaterThan(sample.freeMemoryBytes);
    expect(sample.loadAverage).toHaveLength(3);
    expect(sample.eventLoopLagMs).toBeGreaterThanOrEqual(0);
    expect(sample.sessionCount).toBe(3);
    expect(sample.cpuCount).toBeGreaterThanOrEqual(1);
  });

  it('measures CPU use over the interval on the injected clock', () => {
    const clock = new ManualClock();
    const before = process.cpuUsage();
    const collector = new MetricsCollector(() => 0, clock);
    const started = process.cpuUsage();
    burnCpu(30_000);
    const surelyUsed = process.cpuUsage(started);
    // Ten seconds on the clock, though only milliseconds really passed.
    clock.advance(10_000);
    const sample = collector.sample();
    const atMostUsed = process.cpuUsage(before);
    collector.close();

    const percentOf = (used: NodeJS.CpuUsage) => ((used.user + used.system) / 10_000_000) * 100;
    // Readings are rounded to hundredths.
    expect(sample.cpuPercent).toBeGreaterThanOrEqual(percentOf(surelyUsed) - 0.005);
    expect(sample.cpuPercent).toBeLessThanOrEqual(percentOf(atMostUsed) + 0.005);
    expect(sample.cpuPercent).toBeGreaterThan(0);
  });
});
