import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { LogThrottle, type ThrottledWrite } from '../platform/log-throttle.js';
import { loggableError } from '../platform/loggable-error.js';
import type { Logger } from '../../lib/logger.js';
import type { WorkerSessionEvent } from './fleet.types.js';
import type { WorkerConnection } from './worker-connection.js';

/**
 * Why something a worker sent was refused. A closed set, so the metric's
 * label stays bounded (never a worker or session id):
 * - `invalid_message`: broke worker.proto's rules; the stream ends.
 * - `stale_event`: a session event of an earlier attempt, or for a session
 *   this worker does not run.
 * - `session_gone`: a session event for a session that does not exist (deleted).
 * - `unexpected_event`: an event the session's state does not expect, or an
 *   epoch ahead of the session's.
 * - `late_response`: a response after its request's deadline, or to no request.
 * - `unknown_ack`: a command acknowledgement no command waits for.
 * - `unowned_session`: a Hello lists a session the worker has no right to run.
 */
export type RefusalCause =
  | 'invalid_message'
  | 'stale_event'
  | 'session_gone'
  | 'unexpected_event'
  | 'late_response'
  | 'unknown_ack'
  | 'unowned_session';

const CAUSES: readonly RefusalCause[] = [
  'invalid_message',
  'stale_event',
  'session_gone',
  'unexpected_event',
  'late_response',
  'unknown_ack',
  'unowned_session',
];

/** Keys remembered by the log throttle; a fleet of this many misbehaving workers is already an incident. */
const MAX_THROTTLED_KEYS = 10_000;

/**
 * Counts what workers send that is refused, and keeps the warnings about it
 * from amplifying a flood: a worker repeating the same mistake thousands of
 * times a second gets one line per worker and cause per interval (with the
 * count of those not logged), while the counter counts every one. Also
 * reports the faults that end a worker's stream: a protocol error (the
 * worker's) and an internal error (ours).
 */
export class WorkerRefusals {
  private readonly counter: Counter<'cause'>;
  private readonly lateEnds: Counter;
  private readonly throttle: LogThrottle;
  private readonly log: Logger;

  constructor(registry: Registry, options: { clock: Clock; logger: Logger; logIntervalMs: number }) {
    this.log = options.logger;
    this.counter = new Counter({
      name: 'switchboard_worker_events_refused_total',
      help: 'Messages from workers that the control plane refused, by cause (all counted, warnings rate-limited).',
      labelNames: ['cause'],
      registers: [registry],
    });
    // Every cause shows from the start, so a rate over it never starts from "no data".
    for (const cause of CAUSES) this.counter.inc({ cause }, 0);
    this.lateEnds = new Counter({
      name: 'switchboard_worker_late_session_ends_total',
      help:
        'Session ends workers reported for an attempt the control plane had already ended (a stop, restart, ' +
        'logout, delete or reassignment): the expected acknowledgement, not a refusal.',
      registers: [registry],
    });
    this.throttle = new LogThrottle({
      clock: options.clock,
      intervalMs: options.logIntervalMs,
      maxKeys: MAX_THROTTLED_KEYS,
    });
  }

  /**
   * Counts one refusal and calls `write` to log it, unless a line for the
   * same worker and cause was written within the interval; `write` receives
   * how many were not logged since the last line (log it as `suppressed`).
   */
  record(workerId: string, cause: RefusalCause, write: ThrottledWrite): void {
    this.counter.inc({ cause });
    this.throttle.log(`${workerId} ${cause}`, write);
  }

  /**
   * A worker's end of an attempt that was already over on our side: not a
   * refusal (no warning, not in the refusal counter), but counted apart and
   * logged through `write` at most once per worker and interval, so a worker
   * replaying them by the thousand still shows.
   */
  lateEnd(workerId: string, write: ThrottledWrite): void {
    this.lateEnds.inc();
    this.throttle.log(`${workerId} late_end`, write);
  }

  /**
   * The stream broke worker.proto's rules (the transport's validation refused
   * an envelope): counted, and a warning naming the worker, the field and the
   * violation. The caller ends the stream with the error.
   */
  protocolError(connection: WorkerConnection, error: DomainError): void {
    // Before its Hello a stream has no worker id: its address stands in (without the port, new per connection).
    const who = connection.workerId || connection.peer.slice(0, Math.max(0, connection.peer.lastIndexOf(':')));
    this.record(who, 'invalid_message', (suppressed) =>
      this.log.warn(
        {
          workerId: connection.workerId || undefined,
          worker: connection.workerName || undefined,
          peer: connection.peer,
          field: error.details.field,
          violation: error.message,
          suppressed,
        },
        'worker stream ended: protocol error',
      ),
    );
  }

  /**
   * Something failed on our side while handling a worker's stream (a
   * database error applying a session event): logged with its cause (never
   * the SQL with its parameters); returns the error the agent gets instead.
   */
  internalError(
    connection: WorkerConnection,
    what: string,
    error: unknown,
    event?: Pick<WorkerSessionEvent, 'sessionId' | 'epoch'>,
  ): DomainError {
    this.log.error(
      { err: loggableError(error), workerId: connection.workerId, sessionId: event?.sessionId, epoch: event?.epoch },
      `internal error ${what}; ending the worker's stream`,
    );
    return new DomainError('INTERNAL', `the control plane failed ${what}; reconnect and report again`, {
      cause: error,
    });
  }
}
