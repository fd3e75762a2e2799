import type { CommandSender, WorkerSessionEvent } from '../fleet/fleet.types.js';
import type { WorkerRefusals } from '../fleet/worker-refusals.js';
import type { Clock } from '../../lib/clock.js';
import type { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

/** Why an event for a session that is not there is refused. */
export const SESSION_GONE = 'the session does not exist (deleted)';

/**
 * A worker's `ended` for an attempt the control plane had already ended: its
 * epoch is older than the session's, or the session was deleted since. Every
 * stop, restart, logout, delete and reassignment ends the attempt on our side
 * first (the epoch goes up) and then tells the worker, whose "ended" report
 * therefore always arrives stale: it is the expected acknowledgement that
 * the worker let go, with nothing to refuse or stop. An `ended` carrying the
 * current epoch from a worker that does not run the session is no such
 * thing (that worker never ran this attempt) and stays a stale event.
 */
export function isLateEnd(report: WorkerSessionEvent, sessionEpoch: number | undefined): boolean {
  return report.event.kind === 'ended' && (sessionEpoch === undefined || report.epoch < sessionEpoch);
}

/**
 * Session events the sessions capability refuses. A worker can send them by
 * the thousand (a bug, or a stale process replaying), so each is counted in
 * the fleet's refusal metric and warned about at most once per worker, cause
 * and interval; and a worker running a session it has no right to is told
 * to stop it once per interval (`resendStopAfterMs`), not once per event:
 * within the interval the first StopSession stands, answered or not, so how
 * long a flood takes to read changes nothing.
 */
export class RefusedSessionEvents {
  /** Events refused because they carried a stale epoch or came from the wrong worker. */
  staleEvents = 0;
  /** When (monotonic ms) a StopSession went out for a stale attempt, by "worker session epoch". */
  private readonly stopsSent = new Map<string, number>();

  constructor(
    private readonly commands: CommandSender,
    private readonly refusals: WorkerRefusals,
    private readonly log: Logger,
    private readonly timing: { clock: Clock; resendStopAfterMs: number },
  ) {}

  /**
   * A stale event: counted, logged sparingly, and the worker told to stop
   * what it runs without the right to. `sessionEpoch` is the session's epoch
   * when it was read (undefined when it does not exist): a late end (see
   * isLateEnd) is only noted.
   */
  stale(workerId: string, report: WorkerSessionEvent, reason: string, sessionEpoch?: number): void {
    if (isLateEnd(report, sessionEpoch)) {
      this.refusals.lateEnd(workerId, (suppressed) =>
        this.log.debug(
          { workerId, sessionId: report.sessionId, epoch: report.epoch, sessionEpoch, reason, suppressed },
          'late end of an attempt already over',
        ),
      );
      return;
    }
    this.staleEvents += 1;
    this.refusals.record(workerId, reason === SESSION_GONE ? 'session_gone' : 'stale_event', (suppressed) =>
      this.log.warn(
        { workerId, sessionId: report.sessionId, epoch: report.epoch, kind: report.event.kind, reason, suppressed },
        'stale session event refused',
      ),
    );
    if (report.event.kind === 'ended') return;
    const stop = `${workerId} ${report.sessionId} ${report.epoch}`;
    const now = this.timing.clock.monotonicMs();
    const sentAt = this.stopsSent.get(stop);
    if (sentAt !== undefined && now - sentAt < this.timing.resendStopAfterMs) return;
    this.forgetStopsBefore(now - this.timing.resendStopAfterMs);
    this.stopsSent.set(stop, now);
    void this.commands
      .sendCommand(workerId, {
        kind: 'stopSession',
        sessionId: report.sessionId,
        epoch: report.epoch,
        reason: `no longer yours: ${reason}`,
      })
      .catch(() => undefined);
  }

  /** Bounds the memory of stops sent: entries older than the interval no longer suppress anything. */
  private forgetStopsBefore(cutoffMs: number): void {
    for (const [stop, sentAt] of this.stopsSent) if (sentAt < cutoffMs) this.stopsSent.delete(stop);
  }

  /** A Hello listed a session the worker runs without the right to (the caller tells it to stop). */
  unowned(workerId: string, sessionId: string, epoch: number): void {
    this.refusals.record(workerId, 'unowned_session', (suppressed) =>
      this.log.warn({ sessionId, workerId, epoch, suppressed }, 'worker runs a session it does not own; stopping it'),
    );
  }

  /** An event the session's state does not expect, or an epoch ahead of it: a broken worker. */
  unexpected(workerId: string, report: WorkerSessionEvent, error: DomainError): void {
    this.refusals.record(workerId, 'unexpected_event', (suppressed) =>
      this.log.warn(
        { err: error, workerId, sessionId: report.sessionId, epoch: report.epoch, kind: report.event.kind, suppressed },
        'session event refused',
      ),
    );
  }
}
