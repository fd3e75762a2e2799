import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../agent/engines/engine-error.js';
import { OutboundQueue, type OutboundText, type SendOutcome } from '../../agent/sessions/outbound-queue.js';
import { DomainError } from '../../lib/errors.js';
import { ManualScheduler } from '../../lib/timers.js';

const log = pino({ level: 'silent' });

/** An engine whose sends the test answers one by one, so order and concurrency are visible. */
function harness(options: { limit?: number; settled?: () => Promise<void> | undefined } = {}) {
  const time = new ManualScheduler();
  const calls: { message: OutboundText; resolve: (id: string) => void; reject: (error: unknown) => void }[] = [];
  const outcomes: SendOutcome[] = [];
  const queue = new OutboundQueue({
    limit: options.limit ?? 100,
    send: (message) =>
      new Promise((resolve, reject) => calls.push({ message, resolve: (id) => resolve({ messageId: id }), reject })),
    report: (outcome) => outcomes.push(outcome),
    settled: options.settled ?? (() => undefined),
    scheduler: time,
    sendTimeoutMs: 30_000,
    log,
  });
  const text = (messageId: string): OutboundText => ({ messageId, to: '15550001111', text: `text ${messageId}` });
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return { time, calls, outcomes, queue, text, turn };
}

describe('OutboundQueue', () => {
  it('sends one message at a time, in the order queued, and reports each outcome in that order', async () => {
    const h = harness();
    for (const id of ['m1', 'm2', 'm3']) expect(h.queue.enqueue(h.text(id))).toBe('queued');
    await h.turn();
    // Only the first is with the engine: the second waits for its answer.
    expect(h.calls.map((call) => call.message.messageId)).toEqual(['m1']);

    h.calls[0]?.resolve('WA1');
    await h.turn();
    expect(h.calls.map((call) => call.message.messageId)).toEqual(['m1', 'm2']);
    h.calls[1]?.reject(new EngineError('INVALID_RECIPIENT', 'no such number'));
    await h.turn();
    h.calls[2]?.resolve('WA3');
    await h.turn();

    expect(h.outcomes).toEqual([
      { kind: 'sent', messageId: 'm1', whatsappMessageId: 'WA1' },
      { kind: 'failed', messageId: 'm2', code: 'INVALID_ARGUMENT', reason: 'no such number' },
      { kind: 'sent', messageId: 'm3', whatsappMessageId: 'WA3' },
    ]);
    expect(h.queue.size).toBe(0);
  });

  it('does not queue a message id already waiting or in flight, but takes it again once it was answered', async () => {
    const h = harness();
    h.queue.enqueue(h.text('m1'));
    h.queue.enqueue(h.text('m2'));
    await h.turn();

    expect(h.queue.enqueue(h.text('m1'))).toBe('duplicate'); // in flight
    expect(h.queue.enqueue(h.text('m2'))).toBe('duplicate'); // waiting
    h.calls[0]?.resolve('WA1');
    await h.turn();
    h.calls[1]?.resolve('WA2');
    await h.turn();
    expect(h.calls).toHaveLength(2);
    expect(h.outcomes.map((outcome) => outcome.messageId)).toEqual(['m1', 'm2']);

    // Answered: a later dispatch of the same id reaches the engine, whose send log dedupes it.
    expect(h.queue.enqueue(h.text('m1'))).toBe('queued');
  });

  it('is bounded: beyond the limit a message is refused at once with RESOURCE_EXHAUSTED and never sent', async () => {
    const h = harness({ limit: 2 });
    h.queue.enqueue(h.text('m1'));
    await h.turn(); // m1 in flight: the limit counts the ones waiting
    expect(h.queue.enqueue(h.text('m2'))).toBe('queued');
    expect(h.queue.enqueue(h.text('m3'))).toBe('queued');
    expect(h.queue.enqueue(h.text('m4'))).toBe('full');

    expect(h.outcomes).toEqual([
      expect.objectContaining({ kind: 'failed', messageId: 'm4', code: 'RESOURCE_EXHAUSTED' }),
    ]);
    for (let i = 0; i < 3; i++) {
      h.calls[i]?.resolve(`WA${i + 1}`);
      await h.turn();
    }
    expect(h.calls.map((call) => call.message.messageId)).toEqual(['m1', 'm2', 'm3']);
  });

  it('maps refusals: not connected is FAILED_PRECONDITION, anything unknown UNAVAILABLE (safe to dispatch again)', async () => {
    const h = harness();
    h.queue.enqueue(h.text('m1'));
    h.queue.enqueue(h.text('m2'));
    h.queue.enqueue(h.text('m3'));
    await h.turn();
    h.calls[0]?.reject(new EngineError('NOT_CONNECTED', 'the session is pairing'));
    await h.turn();
    h.calls[1]?.reject(new DomainError('UNAVAILABLE', 'socket closed'));
    await h.turn();
    h.calls[2]?.reject(new Error('a bug'));
    await h.turn();

    expect(h.outcomes.map((outcome) => (outcome.kind === 'failed' ? outcome.code : outcome.kind))).toEqual([
      'FAILED_PRECONDITION',
      'UNAVAILABLE',
      'UNAVAILABLE',
    ]);
  });

  it('reports a send the engine never answers as UNAVAILABLE after the send timeout and moves on', async () => {
    const h = harness();
    h.queue.enqueue(h.text('m1'));
    h.queue.enqueue(h.text('m2'));
    await h.turn();
    h.time.advance(29_999);
    await h.turn();
    expect(h.outcomes).toEqual([]);

    h.time.advance(1);
    await h.turn();
    expect(h.outcomes).toEqual([expect.objectContaining({ kind: 'failed', messageId: 'm1', code: 'UNAVAILABLE' })]);
    expect(h.calls.map((call) => call.message.messageId)).toEqual(['m1', 'm2']);
  });

  it('on close reports every waiting message UNAVAILABLE, still reports the one in flight, and takes no more', async () => {
    const h = harness();
    for (const id of ['m1', 'm2', 'm3']) h.queue.enqueue(h.text(id));
    await h.turn();

    h.queue.close('UNAVAILABLE', 'the session ended');
    expect(h.queue.enqueue(h.text('m4'))).toBe('closed');
    h.calls[0]?.resolve('WA1');
    await h.turn();

    expect(h.outcomes).toEqual([
      { kind: 'failed', messageId: 'm2', code: 'UNAVAILABLE', reason: 'the session ended' },
      { kind: 'failed', messageId: 'm3', code: 'UNAVAILABLE', reason: 'the session ended' },
      { kind: 'sent', messageId: 'm1', whatsappMessageId: 'WA1' },
    ]);
    expect(h.calls).toHaveLength(1);
  });

  it('waits for the commands that arrived before a send (an assignment still starting)', async () => {
    let release: () => void = () => undefined;
    let earlier: Promise<void> | undefined = new Promise<void>((resolve) => (release = resolve));
    const h = harness({ settled: () => earlier });
    h.queue.enqueue(h.text('m1'));
    await h.turn();
    expect(h.calls).toHaveLength(0);

    earlier = undefined;
    release();
    await h.turn();
    expect(h.calls.map((call) => call.message.messageId)).toEqual(['m1']);
  });
});
