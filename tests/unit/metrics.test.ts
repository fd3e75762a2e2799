import { describe, expect, it } from 'vitest';
import { MetricsCollector } from '../../agent/metrics.js';

describe('agent metrics collection', () => {
  it('reads real process and host figures', async () => {
    const collector = new MetricsCollector(() => 3);
    // Burn some CPU so the interval has measurable use.
    const until = performance.now() + 50;
    while (performance.now() < until) Math.sqrt(Math.random());
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
});
