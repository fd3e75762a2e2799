import type { WorkerSessionEvent } from './fleet.types.js';

/** Message events (sends, failures, receipts, inbound) consecutive in a stream are applied this many at a time at most. */
export const MAX_MESSAGE_RUN = 2000;

/** Events that are facts about messages, not about the session's lifecycle: applied in batches. */
export function isMessageFact(event: WorkerSessionEvent): boolean {
  const { kind } = event.event;
  return kind === 'messageSent' || kind === 'messageFailed' || kind === 'messageStatus' || kind === 'inbound';
}

/**
 * Takes the next unit of work off the front of a stream's queue of session
 * events: the run of consecutive message events (up to `max`), applied
 * together, or one lifecycle event alone. Taking only from the front keeps
 * every event in the order the worker reported it: a session's lifecycle
 * events stay where they were among its message events.
 */
export function takeRun(
  queue: WorkerSessionEvent[],
  max = MAX_MESSAGE_RUN,
): { kind: 'messages' | 'lifecycle'; events: WorkerSessionEvent[] } | undefined {
  const first = queue[0];
  if (!first) return undefined;
  if (!isMessageFact(first)) return { kind: 'lifecycle', events: queue.splice(0, 1) };
  let end = 1;
  while (end < queue.length && end < max && isMessageFact(queue[end] as WorkerSessionEvent)) end += 1;
  return { kind: 'messages', events: queue.splice(0, end) };
}
