import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../lib/random.js';
import type { DispatchCandidate, DispatchDecision } from '../../src/messaging/dispatch-gate.js';
import {
  chatForms,
  chatKey,
  dailyCap,
  decide,
  EMPTY_GOVERNOR_STATE,
  recordSend,
  type GovernorState,
} from '../../src/messaging/send-governor.js';
import type { SendPolicy } from '../../src/messaging/send-policy.js';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const SECOND = 1000;
const DAY = 24 * 60 * 60 * SECOND;
const NEW_CONTACT = '+15550000001';

/** Only the per-recipient rule binds unless a test says otherwise. */
const POLICY: SendPolicy = {
  perMinute: 6000,
  perDay: 1_000_000,
  newRecipientIntervalSeconds: 6,
  newRecipientBurst: 3,
  warmupDays: 0,
  jitterMs: 0,
};

let nextId = 0;
function candidates(count: number, chat = NEW_CONTACT): DispatchCandidate[] {
  return Array.from({ length: count }, () => ({
    messageId: `m${++nextId}`,
    sessionId: 's1',
    tenantId: 't1',
    chat,
    createdAt: new Date(T0),
  }));
}

/**
 * A fake dispatcher on a fake clock: asks the governor at each moment
 * something was held until, keeps what was held queued (in order), and
 * records when each message went.
 */
function runDispatcher(
  queue: DispatchCandidate[],
  options: {
    policy?: SendPolicy;
    linkedAt?: number | null;
    known?: Set<string>;
    random?: () => number;
    start?: number;
    until?: number;
  },
) {
  const policy = options.policy ?? POLICY;
  let state: GovernorState = EMPTY_GOVERNOR_STATE;
  let now = options.start ?? T0;
  const sentAt = new Map<string, number>();
  const decisionsSeen: DispatchDecision[][] = [];
  let waiting = [...queue];
  for (let round = 0; round < 10_000 && waiting.length > 0; round++) {
    const result = decide(state, {
      policy,
      linkedAt: options.linkedAt ?? null,
      known: options.known ?? new Set(),
      candidates: waiting,
      now,
      random: options.random ?? (() => 0),
    });
    state = result.state;
    decisionsSeen.push(result.decisions);
    expect(result.decisions.map((d) => d.messageId)).toEqual(waiting.map((c) => c.messageId));
    for (const decision of result.decisions) if (decision.release) sentAt.set(decision.messageId, now);
    waiting = waiting.filter((c) => !sentAt.has(c.messageId));
    const next = Math.min(...result.decisions.flatMap((d) => (d.release ? [] : [d.heldUntil.getTime()])));
    if (!Number.isFinite(next)) break;
    expect(next).toBeGreaterThan(now);
    if (options.until !== undefined && next > options.until) break;
    now = next;
  }
  return { sentAt, waiting, decisionsSeen, offsets: queue.map((c) => (sentAt.get(c.messageId) ?? NaN) - T0) };
}

describe('send governor: per-recipient rate', () => {
  it('releases a burst of 10 to one new contact at the burst, then one per 6 s exactly on schedule', () => {
    const queue = candidates(10);
    const run = runDispatcher(queue, {});
    expect(run.offsets).toEqual([0, 0, 0, 6, 12, 18, 24, 30, 36, 42].map((s) => s * SECOND));
  });

  it('shows each held message when it is due and why, in the first decision', () => {
    const first = decide(EMPTY_GOVERNOR_STATE, {
      policy: POLICY,
      linkedAt: null,
      known: new Set(),
      candidates: candidates(6),
      now: T0,
      random: () => 0,
    }).decisions;
    expect(first.filter((d) => d.release)).toHaveLength(3);
    const held = first.flatMap((d) => (d.release ? [] : [d]));
    expect(held.map((d) => d.heldUntil.getTime() - T0)).toEqual([6, 12, 18].map((s) => s * SECOND));
    for (const d of held) expect(d.reason).toBe('per-recipient rate: 1 message per 6 s to a new contact (burst 3)');
  });

  it('does not limit a contact that wrote to the number', () => {
    const queue = candidates(10, '15550000002@s.whatsapp.net');
    const run = runDispatcher(queue, { known: new Set([chatKey('+15550000002')]) });
    expect(run.offsets).toEqual(Array.from({ length: 10 }, () => 0));
  });

  it('lets messages to other chats overtake a held one, but never a later message to the held chat', () => {
    const toA = candidates(5, '+15550000010');
    const toB = candidates(2, '+15550000011');
    // Interleaved: A A A A B A B (A4 and A5 are held by A's interval).
    const queue = [toA[0]!, toA[1]!, toA[2]!, toA[3]!, toB[0]!, toA[4]!, toB[1]!];
    const first = decide(EMPTY_GOVERNOR_STATE, {
      policy: POLICY,
      linkedAt: null,
      known: new Set(),
      candidates: queue,
      now: T0,
      random: () => 0,
    }).decisions;
    expect(first.map((d) => d.release)).toEqual([true, true, true, false, true, false, true]);
    const a4 = first[3] as Extract<DispatchDecision, { release: false }>;
    const a5 = first[5] as Extract<DispatchDecision, { release: false }>;
    expect(a5.heldUntil.getTime()).toBeGreaterThan(a4.heldUntil.getTime());
    const run = runDispatcher(queue, {});
    expect(run.offsets).toEqual([0, 0, 0, 6, 0, 12, 0].map((s) => s * SECOND));
  });

  it('treats the forms of one number as one recipient', () => {
    expect(chatKey('+15550000001')).toBe(chatKey('15550000001@s.whatsapp.net'));
    expect(chatForms('+15550000001')).toEqual(
      expect.arrayContaining(['15550000001', '+15550000001', '15550000001@s.whatsapp.net']),
    );
    const queue = [
      ...candidates(2, '+15550000001'),
      ...candidates(1, '15550000001'),
      ...candidates(1, '15550000001@s.whatsapp.net'),
    ];
    expect(runDispatcher(queue, {}).offsets).toEqual([0, 0, 0, 6 * SECOND]);
  });

  it('forgets a recipient once its interval has passed', () => {
    const after = decide(EMPTY_GOVERNOR_STATE, {
      policy: POLICY,
      linkedAt: null,
      known: new Set(),
      candidates: candidates(1),
      now: T0,
      random: () => 0,
    }).state;
    expect(after.recipientTat.size).toBe(1);
    const later = decide(after, {
      policy: POLICY,
      linkedAt: null,
      known: new Set(),
      candidates: candidates(1, '+15550000099'),
      now: T0 + 60 * SECOND,
      random: () => 0,
    }).state;
    expect([...later.recipientTat.keys()]).toEqual(['15550000099']);
  });
});

describe('send governor: session rate', () => {
  it('sends a bucket of 10 seconds at once, then one per 60/per_minute seconds, with the rate as the reason', () => {
    const policy = { ...POLICY, perMinute: 12, newRecipientIntervalSeconds: 0 };
    const queue = Array.from({ length: 5 }, (_, i) => candidates(1, `+1555000010${i}`)[0]!);
    const first = decide(EMPTY_GOVERNOR_STATE, {
      policy,
      linkedAt: null,
      known: new Set(),
      candidates: queue,
      now: T0,
      random: () => 0,
    }).decisions;
    expect(first.map((d) => d.release)).toEqual([true, true, false, false, false]);
    expect(first[2]).toMatchObject({ reason: 'session rate: 12 messages per minute' });
    expect(runDispatcher(queue, { policy }).offsets).toEqual([0, 0, 5, 10, 15].map((s) => s * SECOND));
  });
});

describe('send governor: daily cap and warm-up', () => {
  it('holds past the daily cap until 00:00 UTC', () => {
    const policy = { ...POLICY, perDay: 3 };
    const queue = candidates(5, '+15550000200');
    const known = new Set([chatKey('+15550000200')]);
    const first = decide(EMPTY_GOVERNOR_STATE, {
      policy,
      linkedAt: null,
      known,
      candidates: queue,
      now: T0,
      random: () => 0,
    }).decisions;
    expect(first.map((d) => d.release)).toEqual([true, true, true, false, false]);
    const midnight = Date.parse('2026-03-03T00:00:00Z');
    expect(first[3]).toMatchObject({ reason: 'daily cap of 3 reached', heldUntil: new Date(midnight) });
    expect(runDispatcher(queue, { policy, known }).offsets).toEqual([0, 0, 0, midnight - T0, midnight - T0]);
  });

  it('ramps the cap linearly over the warm-up days from the link', () => {
    const policy = { ...POLICY, perDay: 800, warmupDays: 7 };
    const linkedAt = T0;
    const caps = [0, 1, 2, 6, 7, 30].map((d) => dailyCap(policy, linkedAt, linkedAt + d * DAY + 1));
    expect(caps).toEqual([
      { cap: 100, warmupDay: 1 },
      { cap: 200, warmupDay: 2 },
      { cap: 300, warmupDay: 3 },
      { cap: 700, warmupDay: 7 },
      { cap: 800, warmupDay: null },
      { cap: 800, warmupDay: null },
    ]);
    expect(dailyCap(policy, null, T0)).toEqual({ cap: 800, warmupDay: null });
    expect(dailyCap({ ...policy, perDay: 3, warmupDays: 60 }, linkedAt, linkedAt).cap).toBe(1);
  });

  it('holds at the warm-up cap with the day shown, until the next warm-up step when that comes before midnight', () => {
    // Linked at 20:00 the day before: warm-up day 2 starts at 20:00 today, before midnight.
    const linkedAt = Date.parse('2026-03-01T20:00:00Z');
    const policy = { ...POLICY, perDay: 40, warmupDays: 3 }; // day 1: 10, day 2: 20
    const known = new Set([chatKey('+15550000300')]);
    let state = EMPTY_GOVERNOR_STATE;
    for (let i = 0; i < 10; i++) state = recordSend(state, { policy, known }, chatKey('+15550000300'), T0 - i);
    const [held] = decide(state, {
      policy,
      linkedAt,
      known,
      candidates: candidates(1, '+15550000300'),
      now: T0,
      random: () => 0,
    }).decisions;
    expect(held).toMatchObject({
      release: false,
      reason: 'daily cap of 10 reached (warm-up day 1 of 3)',
      heldUntil: new Date(Date.parse('2026-03-02T20:00:00Z')),
    });
    // At the step the cap is 20 and today's 10 sends leave room.
    const later = decide(state, {
      policy,
      linkedAt,
      known,
      candidates: candidates(1, '+15550000300'),
      now: Date.parse('2026-03-02T20:00:00Z'),
      random: () => 0,
    }).decisions;
    expect(later[0]?.release).toBe(true);
  });
});

describe('send governor: jitter', () => {
  const policy = { ...POLICY, newRecipientIntervalSeconds: 0, jitterMs: 2000 };
  const known = new Set<string>();

  it('pauses a random time within [0, jitter_ms) after each message, the same for the same seed', () => {
    const queue = Array.from({ length: 20 }, (_, i) => candidates(1, `+1555000040${i}`)[0]!);
    const a = runDispatcher(queue, { policy, known, random: seededRandom(42) });
    const b = runDispatcher(queue, { policy, known, random: seededRandom(42) });
    expect(a.offsets).toEqual(b.offsets);
    const gaps = a.offsets.slice(1).map((t, i) => t - a.offsets[i]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThan(2000);
    }
    expect(new Set(gaps).size).toBeGreaterThan(5); // really random, not a fixed delay
    const c = runDispatcher(queue, { policy, known, random: seededRandom(7) });
    expect(c.offsets).not.toEqual(a.offsets);
  });

  it('says jitter is why the next message waits', () => {
    const decisions = decide(EMPTY_GOVERNOR_STATE, {
      policy,
      linkedAt: null,
      known,
      candidates: candidates(2, '+15550000500'),
      now: T0,
      random: () => 0.5,
    }).decisions;
    expect(decisions[0]?.release).toBe(true);
    expect(decisions[1]).toMatchObject({
      release: false,
      heldUntil: new Date(T0 + 1000),
      reason: 'jitter: a random pause of up to 2000 ms between messages',
    });
  });
});

describe('send governor: nothing is dropped', () => {
  it('answers every candidate once, in order, and eventually releases all of them under every rule at once', () => {
    const policy: SendPolicy = {
      perMinute: 20,
      perDay: 50,
      newRecipientIntervalSeconds: 6,
      newRecipientBurst: 3,
      warmupDays: 7,
      jitterMs: 2000,
    };
    const chats = ['+15550000600', '+15550000601', '15550000602@s.whatsapp.net', '120363@g.us'];
    const queue = Array.from({ length: 200 }, (_, i) => candidates(1, chats[i % chats.length])[0]!);
    const run = runDispatcher(queue, {
      policy,
      linkedAt: T0 - 2 * DAY,
      known: new Set([chatKey(chats[1]!)]),
      random: seededRandom(3),
    });
    expect(run.waiting).toEqual([]);
    expect(run.sentAt.size).toBe(200);
    // Per chat, messages went in the order they were queued.
    for (const chat of chats) {
      const times = queue.filter((c) => c.chat === chat).map((c) => run.sentAt.get(c.messageId)!);
      expect(times).toEqual([...times].sort((x, y) => x - y));
    }
    // No UTC day saw more than the warm-up cap of that day.
    const perDay = new Map<number, number>();
    for (const at of run.sentAt.values()) perDay.set(Math.floor(at / DAY), (perDay.get(Math.floor(at / DAY)) ?? 0) + 1);
    for (const [day, count] of perDay) {
      expect(count).toBeLessThanOrEqual(dailyCap(policy, T0 - 2 * DAY, (day + 1) * DAY - 1).cap);
    }
  });
});
