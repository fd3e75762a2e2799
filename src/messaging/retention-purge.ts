import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from '../../lib/logger.js';
import { every, type Timer } from '../../lib/timers.js';
import type { TenantPlan } from '../identity/identity.types.js';
import type { Resources } from '../platform/resources.js';
import type { HistoryConfig } from './retention.config.js';

const LEADERSHIP_KEY = 'history:retention';
const DAY_MS = 24 * 60 * 60 * 1000;
const PLANS: readonly TenantPlan[] = ['free', 'pro', 'enterprise'];

/** What one purge removed. */
export interface PurgeCounts {
  messages: number;
  chats: number;
  events: number;
}

/**
 * Deletes history past its retention: messages by their tenant's plan,
 * chats whose last activity is older than that (their messages are gone),
 * and events past EVENT_RETENTION_DAYS. In batches of a bounded number of
 * rows per statement (each its own short transaction), looping until none
 * is left, so it never holds long locks on tables the send path writes.
 * One replica runs it at a time (a leadership lease in the coordination
 * store); a purge is idempotent, so a deposed leader finishing a batch
 * does no harm and needs no fencing.
 */
export class RetentionPurge {
  private timer: Timer | undefined;
  private running = false;
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly options: Pick<
      HistoryConfig,
      'messageRetentionDays' | 'eventRetentionDays' | 'purgeIntervalMs' | 'purgeBatch'
    > & {
      replicaId: string;
    },
  ) {
    this.log = resources.logger.child({ component: 'retention' });
  }

  start(): void {
    this.timer ??= every(this.resources.scheduler, this.options.purgeIntervalMs, () => void this.tick());
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.resources.store.releaseLeadership(LEADERSHIP_KEY, this.options.replicaId).catch(() => undefined);
  }

  /** One round: as leader, purge; otherwise nothing. */
  async tick(): Promise<PurgeCounts | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      // The lease outlives two intervals, so the leader keeps it between rounds.
      const term = await this.resources.store.acquireLeadership(
        LEADERSHIP_KEY,
        this.options.replicaId,
        this.options.purgeIntervalMs * 2 + 60_000,
      );
      if (term === null) return undefined;
      return await this.purge();
    } catch (error) {
      this.log.error({ err: error }, 'the retention purge failed; it runs again next interval');
      return undefined;
    } finally {
      this.running = false;
    }
  }

  /** Purges everything past retention as of the clock's now. */
  async purge(): Promise<PurgeCounts> {
    const now = this.resources.clock.now().getTime();
    const counts: PurgeCounts = { messages: 0, chats: 0, events: 0 };
    for (const plan of PLANS) {
      const cutoff = new Date(now - this.options.messageRetentionDays[plan] * DAY_MS);
      counts.messages += await this.inBatches(
        `delete from "message" where "id" in (
           select m."id" from "message" m join "tenant" t on t."id" = m."tenant_id"
            where m."created_at" < ? and t."plan" = ? limit ?)`,
        [cutoff, plan],
      );
      counts.chats += await this.inBatches(
        `delete from "chat" where ("session_id", "chat") in (
           select c."session_id", c."chat" from "chat" c join "tenant" t on t."id" = c."tenant_id"
            where c."last_activity_at" < ? and t."plan" = ? limit ?)`,
        [cutoff, plan],
      );
    }
    counts.events = await this.inBatches(
      `delete from "event" where ("tenant_id", "seq") in (
         select "tenant_id", "seq" from "event" where "created_at" < ? limit ?)`,
      [new Date(now - this.options.eventRetentionDays * DAY_MS)],
    );
    if (counts.messages + counts.chats + counts.events > 0) this.log.info(counts, 'purged history past retention');
    return counts;
  }

  /** Runs a bounded delete (its last parameter is the batch size) until it deletes less than a batch. */
  private async inBatches(sql: string, params: unknown[]): Promise<number> {
    const em: EntityManager = this.resources.orm.em.fork();
    let total = 0;
    for (;;) {
      const result = await em
        .getConnection()
        .execute<{ affectedRows: number }>(sql, [...params, this.options.purgeBatch], 'run');
      total += result.affectedRows;
      if (result.affectedRows < this.options.purgeBatch) return total;
    }
  }
}
