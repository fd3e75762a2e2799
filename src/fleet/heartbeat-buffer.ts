import type { Logger } from '../../lib/logger.js';
import { loggableError } from '../platform/loggable-error.js';
import { foldSample, type MetricsRollup } from './metrics-rollup.js';
import type { HeartbeatRecord, WorkerRepository } from './worker.repository.js';

/**
 * A failed batch is retried row by row when the database refused its data
 * (SQLSTATE classes 22 data exception, 23 integrity constraint, 42 a value it
 * could not parse), not when it is unreachable or overloaded: then every row
 * would fail the same way, once per worker.
 */
const ROW_ERROR = /^(22|23|42)/;
/** Rows dropped in one flush that are logged one by one; the rest are summed up in one line. */
const LOGGED_DROPS_PER_FLUSH = 10;

/**
 * Heartbeats waiting to be written: each worker's latest one, and its
 * metrics folded into per-minute rollups. One flush writes them all in one
 * statement each, whatever the fleet size. One worker's bad row never sinks
 * the others: a batch the database refuses is written again row by row,
 * and only the rows it still refuses are dropped (and logged, without SQL).
 */
export class HeartbeatBuffer {
  private readonly latest = new Map<string, HeartbeatRecord>(); // by worker id
  /** This minute's metrics per worker, folded from heartbeats since the last flush. */
  private readonly rollups = new Map<string, MetricsRollup>();
  /** Rollups of a minute that ended before the flush wrote them. */
  private completed: MetricsRollup[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly repository: () => WorkerRepository,
    private readonly log: Logger,
  ) {}

  add(record: HeartbeatRecord): void {
    this.latest.set(record.workerId, record);
    const previous = this.rollups.get(record.workerId);
    const rollup = foldSample(previous, record.workerId, record.at, record.metrics);
    if (previous && previous.minute.getTime() !== rollup.minute.getTime()) this.completed.push(previous);
    this.rollups.set(record.workerId, rollup);
  }

  /** Takes the stream's last heartbeat if it is still unwritten (the stream ended: it is written with the offline change). */
  takeLatest(workerId: string, streamId: string): HeartbeatRecord | undefined {
    const pending = this.latest.get(workerId);
    if (pending?.streamId !== streamId) return undefined;
    this.latest.delete(workerId);
    return pending;
  }

  /** Writes what was buffered since the last flush; flushes run one after another, never in parallel. */
  flush(): Promise<void> {
    if (this.latest.size === 0 && this.rollups.size === 0 && this.completed.length === 0) return this.flushing;
    const heartbeats = [...this.latest.values()];
    this.latest.clear();
    // Each flush writes what was folded since the last one; the database adds it to the minute.
    const rollups = [...this.completed, ...this.rollups.values()];
    this.completed = [];
    this.rollups.clear();
    this.flushing = this.flushing.then(async () => {
      await this.write('heartbeats', heartbeats, (repository, rows) => repository.recordHeartbeats(rows));
      await this.write('metrics rollups', rollups, (repository, rows) => repository.recordRollups(rows));
    });
    return this.flushing;
  }

  private async write<T extends { workerId: string }>(
    what: string,
    rows: readonly T[],
    store: (repository: WorkerRepository, rows: readonly T[]) => Promise<void>,
  ): Promise<void> {
    if (rows.length === 0) return;
    try {
      await store(this.repository(), rows);
      return;
    } catch (error) {
      if (!ROW_ERROR.test(sqlStateOf(error)) || rows.length === 1) {
        this.log.error(
          {
            err: loggableError(error),
            rows: rows.length,
            ...(rows.length === 1 ? { workerId: rows[0]?.workerId } : {}),
          },
          `could not record ${what}; dropped`,
        );
        return;
      }
    }
    let dropped = 0;
    for (const row of rows) {
      try {
        await store(this.repository(), [row]);
      } catch (error) {
        dropped += 1;
        if (dropped <= LOGGED_DROPS_PER_FLUSH) {
          this.log.error(
            { err: loggableError(error), workerId: row.workerId },
            `could not record a worker's ${what}; dropped that row, recorded the others`,
          );
        }
      }
    }
    if (dropped > LOGGED_DROPS_PER_FLUSH) {
      this.log.error(
        { dropped, rows: rows.length, notLogged: dropped - LOGGED_DROPS_PER_FLUSH },
        `more rows of ${what} dropped in one flush`,
      );
    }
  }
}

function sqlStateOf(error: unknown): string {
  const state =
    (error as { sqlState?: unknown; code?: unknown } | null)?.sqlState ?? (error as { code?: unknown } | null)?.code;
  return typeof state === 'string' ? state : '';
}
