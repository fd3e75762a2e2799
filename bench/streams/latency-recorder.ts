import { percentile } from '../harness/measure.js';
import type { LatencySummary } from './ipc.js';

/**
 * Collects heartbeat round trips, but only between start() and stop(), so
 * the connection ramp and the shutdown never leak into steady-state figures.
 * Keeps every sample (60 k for 1,000 agents over a minute) for exact percentiles.
 */
export class LatencyRecorder {
  private samples: number[] = [];
  private recording = false;
  private sentCount = 0;

  start(): void {
    this.samples = [];
    this.sentCount = 0;
    this.recording = true;
  }

  stop(): void {
    this.recording = false;
  }

  sent(): void {
    if (this.recording) this.sentCount += 1;
  }

  record(roundTripMs: number): void {
    if (this.recording) this.samples.push(roundTripMs);
  }

  get heartbeatsSent(): number {
    return this.sentCount;
  }

  summary(): LatencySummary {
    const sorted = Float64Array.from(this.samples).sort();
    return {
      count: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] ?? 0) : 0,
    };
  }
}
