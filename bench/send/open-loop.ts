import { setTimeout as sleep } from 'node:timers/promises';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import type { MessageService } from '../../gen/switchboard/v1/message_pb.js';
import { distribution, type Distribution } from '../harness/measure.js';

/** An offered load: SendText at a fixed rate, whatever the server answers. */
export interface OpenLoopOptions {
  messages: Client<typeof MessageService>;
  sessionIds: readonly string[];
  /** Calls started per second. */
  ratePerS: number;
  windowMs: number;
  /**
   * Calls the generator keeps in flight at most; a call due while this many
   * are unanswered is not made and counts as `skipped` (the server did not
   * keep up), so a slow server cannot hide behind a slower generator.
   */
  maxInFlight: number;
  /** Every n-th accepted message is followed to DELIVERED for the end-to-end figure. */
  sampleEvery: number;
  onWindow?: (edge: 'start' | 'end') => Promise<void> | void;
}

export interface OpenLoopResult {
  offered: number;
  accepted: number;
  skipped: number;
  windowMs: number;
  /**
   * From the moment each call was due (not when it left: a call the
   * generator could only start late counts its wait) to its answer.
   */
  acceptance: Distribution;
  errors: Map<string, number>;
  /** Ids of the last 100 messages accepted. */
  lastMessageIds: string[];
  /** Ids of every `sampleEvery`-th message accepted. */
  sampledIds: string[];
}

const TICK_MS = 2;

/**
 * Open-loop SendText load: call k is due at start + k / rate, round-robin
 * over the sessions, through one gRPC (HTTP/2) connection. Unlike the
 * closed loop, the offered rate does not drop when the server slows down,
 * so whether the server sustains it is a yes or no.
 */
export async function driveOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const lastMessageIds: string[] = [];
  const sampledIds: string[] = [];
  const pending = new Set<Promise<void>>();
  let offered = 0;
  let skipped = 0;
  let accepted = 0;

  const call = async (n: number, dueMs: number) => {
    try {
      const { message } = await options.messages.sendText(
        {
          sessionId: options.sessionIds[n % options.sessionIds.length] as string,
          // Not a number any session is linked to: the sandbox delivers it nowhere.
          to: `+1999${String(n % 1_000_000).padStart(7, '0')}`,
          text: `bench message ${n}`,
        },
        { timeoutMs: 30_000 },
      );
      latencies.push(performance.now() - dueMs);
      accepted++;
      if (message) {
        lastMessageIds.push(message.id);
        if (lastMessageIds.length > 100) lastMessageIds.shift();
        if (accepted % options.sampleEvery === 0) sampledIds.push(message.id);
      }
    } catch (error) {
      const e = ConnectError.from(error);
      const key = `${Code[e.code] ?? e.code}: ${e.rawMessage}`;
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
  };

  await options.onWindow?.('start');
  const startMs = performance.now();
  const endMs = startMs + options.windowMs;
  const intervalMs = 1000 / options.ratePerS;
  for (;;) {
    const now = performance.now();
    if (now >= endMs) break;
    const due = Math.min(Math.floor((now - startMs) / intervalMs) + 1, Math.ceil(options.windowMs / intervalMs));
    while (offered < due) {
      const dueMs = startMs + offered * intervalMs;
      const n = offered++;
      if (pending.size >= options.maxInFlight) {
        skipped++;
        continue;
      }
      const promise = call(n, dueMs).finally(() => pending.delete(promise));
      pending.add(promise);
    }
    await sleep(TICK_MS);
  }
  await options.onWindow?.('end');
  await Promise.all(pending);
  return {
    offered,
    accepted,
    skipped,
    windowMs: options.windowMs,
    acceptance: distribution(latencies),
    errors,
    lastMessageIds,
    sampledIds,
  };
}
