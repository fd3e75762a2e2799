import { describe, expect, it } from 'vitest';
import type { WorkerSessionEvent } from '../../src/fleet/fleet.types.js';
import { isLateEnd } from '../../src/sessions/refused-session-events.js';

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
