import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SessionEventUplink, type SessionEventsPayload, type WriteResult } from '../../agent/session-event-uplink.js';
import type { SessionEventInit } from '../../agent/sessions/session-events.js';
import { ManualScheduler } from '../../lib/timers.js';

const log = pino({ level: 'silent' });
const S1 = '00000000-0000-4000-8000-000000000001';
const S2 = '00000000-0000-4000-8000-000000000002';

const sent = (sessionId: string, n: number): SessionEventInit => ({
  sessionId,
  epoch: 1,
  event: { case: 'messageSent', value: { messageId: `m${n}`, whatsappMessageId: `WA${n}` } },
});
const ended = (sessionId: string): SessionEventInit => ({
  sessionId,
  epoch: 1,
  event: { case: 'ended', value: { detail: 'stopped' } },
});

/** Frames as written: a lifecycle event as its case, a batch as the labels of its events. */
function harness(options: { maxBatch?: number; refuse?: (payload: SessionEventsPayload) => boolean } = {}) {
  const time = new ManualScheduler();
  const frames: SessionEventsPayload[] = [];
  let connected = true;
  const uplink = new SessionEventUplink({
    write: (payload): WriteResult => {
      if (!connected) return 'no stream';
      if (options.refuse?.(payload)) return 'invalid';
      frames.push(payload);
      return 'sent';
    },
    scheduler: time,
    log,
    batchDelayMs: 10,
    maxBatch: options.maxBatch ?? 1000,
  });
  const label = (event: SessionEventInit) =>
    event.event?.case === 'messageSent' ? event.event.value.messageId : `${event.event?.case}:${event.sessionId}`;
  const shape = () =>
    frames.map((frame) =>
      frame.case === 'sessionEvents' ? frame.value.events.map(label) : `single ${label(frame.value)}`,
    );
  return {
    time,
    uplink,
    frames,
    shape,
    setConnected: (value: boolean) => (connected = value),
  };
}

describe('SessionEventUplink', () => {
  it('coalesces message facts into one batch sent after the batch delay, not before', () => {
    const h = harness();
    for (let n = 1; n <= 5; n++) h.uplink.push(sent(S1, n));
    h.time.advance(9);
    expect(h.frames).toHaveLength(0);

    h.time.advance(1);
    expect(h.shape()).toEqual([['m1', 'm2', 'm3', 'm4', 'm5']]);
  });

  it('sends a full batch at once and starts the next one', () => {
    const h = harness({ maxBatch: 3 });
    for (let n = 1; n <= 4; n++) h.uplink.push(sent(S1, n));
    expect(h.shape()).toEqual([['m1', 'm2', 'm3']]);

    h.time.advance(10);
    expect(h.shape()).toEqual([['m1', 'm2', 'm3'], 'single m4']);
  });

  it('flushes pending facts before a lifecycle event, which goes alone and at once', () => {
    const h = harness();
    h.uplink.push(sent(S1, 1));
    h.uplink.push(sent(S2, 2));
    h.uplink.push(ended(S1));
    h.uplink.push(sent(S2, 3));
    h.time.advance(10);

    expect(h.shape()).toEqual([['m1', 'm2'], `single ended:${S1}`, 'single m3']);
    expect(h.time.pendingTimers).toBe(0);
  });

  it('holds events while no stream is welcomed and sends them in order, batched, after the Welcome', () => {
    const h = harness();
    h.setConnected(false);
    h.uplink.push(sent(S1, 1));
    h.uplink.push(sent(S1, 2));
    h.time.advance(10);
    h.uplink.push(ended(S1));
    h.uplink.push(sent(S2, 3));
    expect(h.frames).toHaveLength(0);
    expect(h.uplink.backlog).toBe(4);

    h.setConnected(true);
    h.uplink.welcomed();
    expect(h.shape()).toEqual([['m1', 'm2'], `single ended:${S1}`, 'single m3']);
    expect(h.uplink.backlog).toBe(0);
  });

  it('a batch the outbound check refuses goes event by event, so only the bad one is lost', () => {
    const h = harness({ refuse: (payload) => payload.case === 'sessionEvents' });
    h.uplink.push(sent(S1, 1));
    h.uplink.push(sent(S1, 2));
    h.time.advance(10);

    expect(h.shape()).toEqual(['single m1', 'single m2']);
  });

  it('clear() forgets facts waiting for a batch (fenced), and no timer is left', () => {
    const h = harness();
    h.uplink.push(sent(S1, 1));
    expect(h.uplink.clear()).toBe(1);
    h.time.advance(100);
    expect(h.frames).toHaveLength(0);
    expect(h.time.pendingTimers).toBe(0);
  });
});
