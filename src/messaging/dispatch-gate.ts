import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * The port between the dispatcher and the send governor: before queued
 * messages of a session go to its worker, the gate says which may go now and
 * until when the others are held (they stay QUEUED with `held_until` and the
 * reason shown to the tenant; never dropped).
 */

/** A queued message the dispatcher would send now, oldest first per session. */
export interface DispatchCandidate {
  messageId: string;
  sessionId: string;
  tenantId: string;
  /** The recipient as stored on the message. */
  chat: string;
  createdAt: Date;
}

export type DispatchDecision =
  { messageId: string; release: true } | { messageId: string; release: false; heldUntil: Date; reason: string };

export interface DispatchGate {
  /**
   * Decides for one session's candidates, in order. Releasing a message
   * counts it as sent for the session's rates; a held message must not let a
   * later message to the same chat overtake it (order per chat is kept).
   * `tx` is the dispatcher's transaction: whatever the gate reads goes
   * through it, never a second connection (the embedded database has one,
   * and the transaction holds it).
   */
  decide(
    sessionId: string,
    candidates: readonly DispatchCandidate[],
    now: Date,
    tx?: EntityManager,
  ): Promise<DispatchDecision[]>;
}

/** Releases everything: the gate when no governor is configured (and in tests of the pipeline alone). */
export const openGate: DispatchGate = {
  decide: (_sessionId, candidates) =>
    Promise.resolve(candidates.map((candidate) => ({ messageId: candidate.messageId, release: true as const }))),
};
