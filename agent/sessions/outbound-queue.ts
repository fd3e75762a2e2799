import type { Logger } from '../../lib/logger.js';
import type { Scheduler, Timer } from '../../lib/timers.js';
import { toResponseError } from './response-error.js';

/** One dispatched message waiting to be sent by its session. */
export interface OutboundText {
  /** Our message id: the engine's dedupe key. */
  messageId: string;
  to: string;
  text: string;
}

/**
 * The google.rpc codes a failed send is reported with (MessageFailedEvent):
 * INVALID_ARGUMENT when WhatsApp refuses the recipient or content (sending
 * again cannot help), FAILED_PRECONDITION when the session cannot send,
 * RESOURCE_EXHAUSTED when this queue was full, UNAVAILABLE when it was not
 * sent or we cannot tell (safe to dispatch again: the engine dedupes).
 */
export type SendFailureCode = 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'RESOURCE_EXHAUSTED' | 'UNAVAILABLE';

/** What became of a dispatched message, reported as message_sent or message_failed. */
export type SendOutcome =
  | { kind: 'sent'; messageId: string; whatsappMessageId: string }
  | { kind: 'failed'; messageId: string; code: SendFailureCode; reason: string };

/** Why enqueue() took a message or not. */
export type EnqueueResult = 'queued' | 'duplicate' | 'full' | 'closed';

/** How one session's queue is set up; the host builds one per hosted session. */
export interface OutboundQueueOptions {
  /** Most messages waiting (not counting the one in flight); beyond it RESOURCE_EXHAUSTED. */
  limit: number;
  /** The engine call; resolves with WhatsApp's id. */
  send: (message: OutboundText) => Promise<{ messageId: string }>;
  /** Hears every outcome, in the order the messages were sent. Must not throw. */
  report: (outcome: SendOutcome) => void;
  /** Resolves once commands that arrived earlier for the session are done (an assignment still starting). */
  settled: () => Promise<void> | undefined;
  scheduler: Scheduler;
  /** A send the engine has not answered within this is reported UNAVAILABLE and the queue moves on. */
  sendTimeoutMs: number;
  log: Logger;
}

/**
 * One session's dispatched messages, sent one at a time in the order they
 * were dispatched: WhatsApp shows a chat's messages in the order it took
 * them, so a later message must not overtake an earlier one. A message id
 * already waiting or in flight is not queued again (the control plane may
 * dispatch again a message whose confirmation is late); one sent earlier
 * is the engine's to dedupe. Bounded, so a flood cannot grow memory.
 */
export class OutboundQueue {
  private readonly waiting: OutboundText[] = [];
  /** Ids waiting or in flight. */
  private readonly ids = new Set<string>();
  private running = false;
  private closed = false;

  constructor(private readonly options: OutboundQueueOptions) {}

  /** Messages waiting or in flight. */
  get size(): number {
    return this.ids.size;
  }

  /** Queues a message; a full queue reports it failed with RESOURCE_EXHAUSTED at once. */
  enqueue(message: OutboundText): EnqueueResult {
    if (this.ids.has(message.messageId)) return 'duplicate';
    if (this.closed) return 'closed';
    if (this.waiting.length >= this.options.limit) {
      this.options.report({
        kind: 'failed',
        messageId: message.messageId,
        code: 'RESOURCE_EXHAUSTED',
        reason: `the session's send queue on this worker is full (${this.options.limit} messages)`,
      });
      return 'full';
    }
    this.ids.add(message.messageId);
    this.waiting.push(message);
    if (!this.running) void this.pump();
    return 'queued';
  }

  /**
   * Stops taking and sending messages (the session ended or moved): every
   * message still waiting is reported failed with `code`. The one in flight,
   * if any, is still reported when the engine answers.
   */
  close(code: SendFailureCode, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const message of this.waiting.splice(0)) {
      this.ids.delete(message.messageId);
      this.options.report({ kind: 'failed', messageId: message.messageId, code, reason });
    }
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        const earlier = this.options.settled();
        if (earlier) await earlier;
        const message = this.closed ? undefined : this.waiting.shift();
        if (message === undefined) return;
        const outcome = await this.sendOne(message);
        this.ids.delete(message.messageId);
        this.options.report(outcome);
      }
    } catch (error) {
      // report() must not throw; if it does, the queue must not wedge silently.
      this.options.log.error({ err: error }, 'outbound queue failed');
    } finally {
      this.running = false;
    }
  }

  private async sendOne(message: OutboundText): Promise<SendOutcome> {
    let timer: Timer | undefined;
    const timedOut = new Promise<'timed out'>((resolve) => {
      timer = this.options.scheduler.schedule(this.options.sendTimeoutMs, () => resolve('timed out'));
    });
    try {
      const answer = await Promise.race([this.options.send(message), timedOut]);
      if (answer === 'timed out') {
        return {
          kind: 'failed',
          messageId: message.messageId,
          code: 'UNAVAILABLE',
          reason: `the engine did not confirm the send within ${this.options.sendTimeoutMs} ms; it may still go out`,
        };
      }
      return { kind: 'sent', messageId: message.messageId, whatsappMessageId: answer.messageId };
    } catch (error) {
      const { code, message: reason, unexpected } = toResponseError(error);
      this.options.log[unexpected ? 'error' : 'debug'](
        { err: error, messageId: message.messageId, code },
        'dispatched message not sent',
      );
      return { kind: 'failed', messageId: message.messageId, code: failureCode(code), reason };
    } finally {
      timer?.cancel();
    }
  }
}

/** Engine refusals as a MessageFailedEvent code; anything not clearly final is UNAVAILABLE (dispatch again). */
function failureCode(code: string): SendFailureCode {
  switch (code) {
    case 'INVALID_ARGUMENT':
    case 'FAILED_PRECONDITION':
    case 'RESOURCE_EXHAUSTED':
      return code;
    default:
      return 'UNAVAILABLE';
  }
}
