import { setTimeout as sleep } from 'node:timers/promises';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import type { MessageService } from '../../gen/switchboard/v1/message_pb.js';
import { distribution, type Distribution } from '../harness/measure.js';

/** How the load is driven; the same for the control plane and the floor. */
export interface SendLoadOptions {
  messages: Client<typeof MessageService>;
  /** Sessions to send through, taken in turn. */
  sessionIds: readonly string[];
  /** SendText calls in flight at all times (closed loop). */
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  /** Called when the window opens and when it closes, e.g. to take CPU readings. */
  onWindow?: (edge: 'start' | 'end') => Promise<void> | void;
}

/** What the window saw. */
export interface SendLoadResult {
  /** SendText calls answered OK inside the window. */
  completed: number;
  windowMs: number;
  /** Of the calls answered OK inside the window. */
  latency: Distribution;
  /** Every failure during warm-up and window, by code and message. */
  errors: Map<string, number>;
  /** Calls started in total (warm-up, window and the ones still in flight when it closed). */
  started: number;
  /** Message ids (ours) of the last calls answered OK in the window, to follow their receipts. */
  lastMessageIds: string[];
}

/**
 * Closed-loop SendText load: `concurrency` callers, each sending the next
 * message as soon as its previous one is answered, round-robin over the
 * sessions, through one gRPC (HTTP/2) connection. Only calls answered
 * inside the window count; a warm-up comes first.
 */
export async function driveSends(options: SendLoadOptions): Promise<SendLoadResult> {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const lastMessageIds: string[] = [];
  let phase: 'warmup' | 'window' | 'done' = 'warmup';
  let windowStartMs = 0;
  let windowEndMs = 0;
  let next = 0;
  let started = 0;

  const caller = async (index: number) => {
    while (phase !== 'done') {
      const n = next++;
      const sessionId = options.sessionIds[n % options.sessionIds.length] as string;
      started++;
      const sentAtMs = performance.now();
      try {
        const { message } = await options.messages.sendText(
          {
            sessionId,
            // Not a number any session is linked to: the sandbox delivers it nowhere.
            to: `+1999${String(n % 1_000_000).padStart(7, '0')}`,
            text: `bench message ${n} from caller ${index}`,
          },
          { timeoutMs: 30_000 },
        );
        const answeredAtMs = performance.now();
        if (phase === 'window' && answeredAtMs < windowEndMs) {
          latencies.push(answeredAtMs - sentAtMs);
          if (message) {
            lastMessageIds.push(message.id);
            if (lastMessageIds.length > 100) lastMessageIds.shift();
          }
        }
      } catch (error) {
        const e = ConnectError.from(error);
        const key = `${Code[e.code] ?? e.code}: ${e.rawMessage}`;
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
    }
  };

  const callers = Array.from({ length: options.concurrency }, (_, i) => caller(i));
  await sleep(options.warmupMs);
  await options.onWindow?.('start');
  windowStartMs = performance.now();
  windowEndMs = windowStartMs + options.windowMs;
  phase = 'window';
  await sleep(options.windowMs);
  phase = 'done';
  await options.onWindow?.('end');
  await Promise.all(callers);
  return {
    completed: latencies.length,
    // Answers count by their timestamp against the window's end, so the window is exactly this long.
    windowMs: options.windowMs,
    latency: distribution(latencies),
    errors,
    started,
    lastMessageIds,
  };
}
