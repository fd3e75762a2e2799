import { describe, expect, it } from 'vitest';
import { percentile, summariseFleet, type SummarisedWorker } from '../../src/fleet/fleet-summary.js';
import type { WorkerMetrics } from '../../src/fleet/worker.entity.js';
import { isSchedulable, planAdminAction, type AdminAction, type WorkerStanding } from '../../src/fleet/worker.state.js';
import { matchesLabels, parseLabelSelector } from '../../src/scheduling/label-selector.js';
import { DomainError } from '../../lib/errors.js';

const worker = (overrides: Partial<WorkerStanding> = {}): WorkerStanding => ({
  status: 'ONLINE',
  schedulability: 'ACTIVE',
  sessionCount: 0,
  ...overrides,
});

const outcome = (standing: WorkerStanding, action: AdminAction) => {
  try {
    const plan = planAdminAction(standing, action);
    return `${plan.status}/${plan.schedulability}/${plan.event ?? 'no event'}`;
  } catch (error) {
    return error instanceof DomainError ? error.code : 'other';
  }
};

describe('operator actions on workers', () => {
  it.each<[Partial<WorkerStanding>, AdminAction, string]>([
    [{}, 'cordon', 'ONLINE/CORDONED/CORDONED'],
    [{ schedulability: 'CORDONED' }, 'cordon', 'ONLINE/CORDONED/no event'],
    [{}, 'drain', 'ONLINE/DRAINING/DRAINING'],
    [{ schedulability: 'DRAINING' }, 'drain', 'ONLINE/DRAINING/no event'],
    [{ schedulability: 'DRAINING' }, 'cordon', 'ONLINE/CORDONED/CORDONED'],
    [{ schedulability: 'CORDONED' }, 'uncordon', 'ONLINE/ACTIVE/UNCORDONED'],
    [{ schedulability: 'DRAINING' }, 'uncordon', 'ONLINE/ACTIVE/UNCORDONED'],
    [{}, 'uncordon', 'ONLINE/ACTIVE/no event'],
    [{ status: 'OFFLINE', schedulability: 'CORDONED' }, 'uncordon', 'OFFLINE/ACTIVE/UNCORDONED'],
    [{}, 'remove', 'FAILED_PRECONDITION'],
    [{ schedulability: 'CORDONED' }, 'remove', 'FAILED_PRECONDITION'],
    [{ schedulability: 'DRAINING', sessionCount: 3 }, 'remove', 'FAILED_PRECONDITION'],
    [{ schedulability: 'DRAINING', sessionCount: 0 }, 'remove', 'REMOVED/DRAINING/REMOVED'],
    [{ status: 'OFFLINE' }, 'remove', 'REMOVED/ACTIVE/REMOVED'],
    [{ status: 'FAILED' }, 'remove', 'REMOVED/ACTIVE/REMOVED'],
    [{ status: 'REMOVED' }, 'remove', 'REMOVED/ACTIVE/no event'],
    [{ status: 'REMOVED' }, 'cordon', 'FAILED_PRECONDITION'],
    [{ status: 'REMOVED' }, 'uncordon', 'FAILED_PRECONDITION'],
  ])('%o + %s -> %s', (standing, action, expected) => {
    expect(outcome(worker(standing), action)).toBe(expected);
  });

  it('places new work only on online, active workers', () => {
    expect(isSchedulable(worker())).toBe(true);
    expect(isSchedulable(worker({ schedulability: 'CORDONED' }))).toBe(false);
    expect(isSchedulable(worker({ schedulability: 'DRAINING' }))).toBe(false);
    expect(isSchedulable(worker({ status: 'OFFLINE' }))).toBe(false);
  });
});

describe('label selectors', () => {
  const labels = { region: 'eu', zone: 'eu-1a', gpu: 'true' };

  it.each([
    ['', true],
    ['region=eu', true],
    ['region==eu', true],
    ['region=us', false],
    ['region=eu,zone!=eu-1c', true],
    ['zone!=eu-1a', false],
    ['gpu', true],
    ['!gpu', false],
    ['!spot', true],
    ['spot!=x', true],
  ])('%j matches %s', (selector, expected) => {
    expect(matchesLabels(labels, parseLabelSelector(selector))).toBe(expected);
  });

  it.each(['region=eu=x', '!region=eu', 'a b'])('refuses %j with INVALID_ARGUMENT', (selector) => {
    expect(() => parseLabelSelector(selector)).toThrow(/label_selector/);
  });
});

describe('fleet summary', () => {
  const metrics = (cpuPercent: number, usedFraction: number, sessionCount: number): WorkerMetrics => ({
    cpuPercent,
    rssBytes: 1,
    heapUsedBytes: 1,
    heapTotalBytes: 1,
    loadAverage: [0, 0, 0],
    freeMemoryBytes: 1000 * (1 - usedFraction),
    totalMemoryBytes: 1000,
    eventLoopLagMs: 0,
    sessionCount,
    cpuCount: 2,
  });

  it('counts statuses, capacity of schedulable workers, and load percentiles', () => {
    const workers: SummarisedWorker[] = [
      { status: 'ONLINE', schedulability: 'ACTIVE', capacity: 100, metrics: metrics(10, 0.5, 40) },
      { status: 'ONLINE', schedulability: 'ACTIVE', capacity: 50, metrics: metrics(30, 0.25, 60) },
      { status: 'ONLINE', schedulability: 'CORDONED', capacity: 100, metrics: metrics(90, 0.75, 5) },
      { status: 'OFFLINE', schedulability: 'ACTIVE', capacity: 100, metrics: null },
      { status: 'FAILED', schedulability: 'ACTIVE', capacity: 100, metrics: null },
    ];
    expect(summariseFleet(workers)).toEqual({
      workersByStatus: { ONLINE: 3, OFFLINE: 1, FAILED: 1, REMOVED: 0 },
      onlineBySchedulability: { ACTIVE: 2, CORDONED: 1, DRAINING: 0 },
      totalCapacity: 150,
      // 60 + 0 (an over-full worker frees nothing)
      freeCapacity: 60,
      cpuPercentP50: 30,
      cpuPercentP95: 90,
      memoryPercentP50: 50,
      memoryPercentP95: 75,
    });
  });

  it('uses nearest-rank percentiles and 0 for an empty fleet', () => {
    expect(percentile([], 50)).toBe(0);
    expect(percentile([5], 95)).toBe(5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
    expect(summariseFleet([]).totalCapacity).toBe(0);
  });
});
