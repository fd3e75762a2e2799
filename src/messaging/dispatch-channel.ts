/** A queued message handed to the worker running its session, under the session's current epoch. */
export interface OutboundDispatch {
  sessionId: string;
  epoch: number;
  /** Our message id: the engine's dedupe key. */
  messageId: string;
  to: string;
  text: string;
}

/**
 * The agent streams of this replica, as the dispatcher needs them.
 * Declared here and implemented by the fleet (the composition root wires
 * it), so messaging does not depend on how streams are kept.
 */
export interface DispatchChannel {
  /** Sends one DispatchMessages frame down the worker's live stream here; false when this replica does not hold it. */
  send(workerId: string, messages: readonly OutboundDispatch[]): boolean;
  /** Whether this replica holds the worker's live stream. */
  holds(workerId: string): boolean;
  /** Workers whose live streams this replica holds. */
  localWorkers(): string[];
}
