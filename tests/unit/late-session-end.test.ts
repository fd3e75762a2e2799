import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import type { CommandSender, WorkerCommand, WorkerSessionEvent } from '../../src/fleet/fleet.types.js';
import { WorkerRefusals } from '../../src/fleet/worker-refusals.js';
import { isLateEnd, RefusedSessionEvents } from '../../src/sessions/refused-session-events.js';

const report = (event: WorkerSessionEvent['event'], epoch: number): WorkerSessionEvent => ({
  sessionId: '9a3f1c52-8d1e-4b7a-9c1d-2f6e8a4b5c7d',
  epoch,
  occurredAt: new Date(0),
  event,
});
const ended: WorkerSessionEvent['event'] = { kind: 'ended', reason: 'STOPPED', detail: '' };
const qr: WorkerSessionEvent['event'] = { kind: 'qr', payload: 'a,b,c,d', expiresAt: new Date(0), sequence: 1 };

describe('a late end of an attempt already over (not a refusal)', () => {
  it.each([
    ['an end of the attempt before the current one (after a stop or restart)', report(ended, 4), 5, true],
    ['an end of an older attempt (several restarts since)', report(ended, 2), 5, true],
    ['an end for a session deleted since', report(ended, 4), undefined, true],
    ['an end with the current epoch (from a worker that does not run it)', report(ended, 5), 5, false],
    ['a QR code of an earlier attempt (the worker still runs it)', report(qr, 4), 5, false],
    ['a QR code for a deleted session', report(qr, 4), undefined, false],
  ])('%s', (_name, event, sessionEpoch, late) => {
    expect(isLateEnd(event, sessionEpoch)).toBe(late);
  });
});

describe('a worker running an attempt it has no right to', () => {
  const setUp = () => {
    const clock = new ManualClock(new Date('2026-11-30T00:00:00Z'));
    const stops: WorkerCommand[] = [];
    const commands: CommandSender = {
      sendCommand: (_workerId, command) => {
        stops.push(command);
        // Never answered: a worker too busy (or too broken) to acknowledge.
        return new Promise<never>(() => undefined);
      },
    };
    const logger = createLogger({ level: 'silent', pretty: false });
    const refusals = new WorkerRefusals(new Registry(), { clock, logger, logIntervalMs: 60_000 });
    const refused = new RefusedSessionEvents(commands, refusals, logger, { clock, resendStopAfterMs: 60_000 });
    return { clock, stops, refused };
  };

  it('is told to stop it once per interval however many stale events it sends, answered or not', () => {
    const { clock, stops, refused } = setUp();
    for (let i = 0; i < 500; i++) {
      refused.stale('w1', report(qr, 4), 'stale epoch', 5);
      clock.advance(100); // 50 s of flood in all: slower than any command deadline
    }
    expect(stops).toHaveLength(1);
    expect(refused.staleEvents).toBe(500);
    clock.advance(10_000);
    refused.stale('w1', report(qr, 4), 'stale epoch', 5);
    expect(stops).toHaveLength(2);
  });

  it('stops each stale attempt on its own', () => {
    const { stops, refused } = setUp();
    refused.stale('w1', report(qr, 3), 'stale epoch', 5);
    refused.stale('w1', report(qr, 4), 'stale epoch', 5);
    refused.stale('w2', report(qr, 4), 'stale epoch', 5);
    expect(stops.map((stop) => stop.kind === 'stopSession' && stop.epoch)).toEqual([3, 4, 4]);
  });
});
