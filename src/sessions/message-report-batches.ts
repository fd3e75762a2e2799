import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { WorkerSessionEvent } from '../fleet/fleet.types.js';
import type { Resources } from '../platform/resources.js';
import { SESSION_GONE, type RefusedSessionEvents } from './refused-session-events.js';
import { fenceAttempt, type SessionState } from './session.state.js';

/** The events of a worker that are message facts (sends, failures, receipts, inbound), applied in batches. */
export type MessageEventKind = 'messageStatus' | 'inbound' | 'messageSent' | 'messageFailed';

export function isMessageEvent(
  report: WorkerSessionEvent,
): report is WorkerSessionEvent & { event: Extract<WorkerSessionEvent['event'], { kind: MessageEventKind }> } {
  const { kind } = report.event;
  return kind === 'messageStatus' || kind === 'inbound' || kind === 'messageSent' || kind === 'messageFailed';
}

/** A fenced message fact, as messaging applies it. */
export interface FencedMessageReport {
  sessionId: string;
  tenantId: string;
  at: Date;
  event: Extract<WorkerSessionEvent['event'], { kind: MessageEventKind }>;
}

/** Where messaging takes the message facts workers report (implemented by messaging, wired by the composition root). */
export interface MessageReports {
  /**
   * Applies fenced reports in the transaction `tx` is in. Returns what to do
   * once it committed (announce its events, count what the worker confirmed).
   */
  apply(
    tx: EntityManager,
    workerId: string,
    reports: readonly FencedMessageReport[],
    now: Date,
  ): Promise<() => Promise<void>>;
  /** A session became WORKING on the worker: what is queued for it can go. */
  sessionWorking(workerId: string): void;
}

interface SessionFence {
  id: string;
  tenant_id: string;
  status: SessionState;
  epoch: number;
  worker_id: string | null;
}

/**
 * Message facts from one worker stream, applied a batch at a time in one
 * transaction: the sessions involved are read once (a plain read, no row
 * lock: these events change no session state, and one racing an epoch
 * change is still a true fact about a message), each event is fenced on its
 * own (stale epoch or wrong worker: refused and counted exactly like any
 * session event, without holding back the others), and the rest go to
 * messaging together.
 */
export class MessageReportBatches {
  constructor(
    private readonly resources: Resources,
    private readonly messages: MessageReports,
    private readonly refused: RefusedSessionEvents,
  ) {}

  async apply(workerId: string, reports: readonly WorkerSessionEvent[]): Promise<void> {
    const now = this.resources.clock.now();
    const refusals: (() => void)[] = [];
    const applied = await this.resources.orm.em.fork().transactional(async (tx) => {
      const ids = [...new Set(reports.map((r) => r.sessionId))];
      const sessions = await tx.getConnection().execute<SessionFence[]>(
        `select "id", "tenant_id", "status", "epoch", "worker_id" from "session"
            where "id" in (select "value"::uuid from jsonb_array_elements_text(?::jsonb))`,
        [JSON.stringify(ids)],
        'all',
        tx.getTransactionContext(),
      );
      const byId = new Map(sessions.map((s) => [s.id, s]));
      const fenced: FencedMessageReport[] = [];
      for (const report of reports) {
        if (!isMessageEvent(report)) continue;
        const session = byId.get(report.sessionId);
        if (!session) {
          refusals.push(() => this.refused.stale(workerId, report, SESSION_GONE));
          continue;
        }
        try {
          const fence = fenceAttempt(
            { state: session.status, epoch: session.epoch, workerId: session.worker_id },
            { epoch: report.epoch, workerId },
          );
          if (!fence.current) {
            refusals.push(() => this.refused.stale(workerId, report, fence.reason, session.epoch));
            continue;
          }
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          refusals.push(() => this.refused.unexpected(workerId, report, error));
          continue;
        }
        const at = 'at' in report.event ? report.event.at : report.occurredAt;
        fenced.push({ sessionId: session.id, tenantId: session.tenant_id, at, event: report.event });
      }
      return fenced.length > 0 ? this.messages.apply(tx, workerId, fenced, now) : undefined;
    });
    for (const refuse of refusals) refuse();
    if (applied !== undefined) await applied();
  }
}
