import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { SealedState } from './auth-state-cipher.js';
import { Session, SessionAuthState, type SessionStatus } from './session.entity.js';

/** Statuses in which a worker runs the session (it takes one of the worker's slots). */
export const ASSIGNED_STATUSES: SessionStatus[] = ['STARTING', 'SCAN_QR', 'WORKING'];

/** Persistence of sessions; every tenant-facing read is scoped by tenant, so other tenants' ids are not found. */
export class SessionRepository {
  constructor(private readonly em: EntityManager) {}

  async findForTenant(tenantId: string, id: string): Promise<Session> {
    const session = await this.em.findOne(Session, { id, tenantId });
    if (!session) throw DomainError.notFound('session', id);
    return session;
  }

  /** Any tenant's session (platform admins' reads). */
  async findById(id: string): Promise<Session> {
    const session = await this.em.findOne(Session, { id });
    if (!session) throw DomainError.notFound('session', id);
    return session;
  }

  /** Locks the tenant's session for a state change (inside a transaction). */
  async lockForTenant(tenantId: string, id: string): Promise<Session> {
    const session = await this.em.findOne(Session, { id, tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!session) throw DomainError.notFound('session', id);
    return session;
  }

  /** Locks a session a worker reports on (inside a transaction); null when it was deleted. */
  async lock(id: string): Promise<Session | null> {
    return this.em.findOne(Session, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  /** Newest first; one tenant's, or every tenant's with `tenantId` null (platform admins). */
  async list(
    tenantId: string | null,
    query: { pageSize: number; before?: { at: Date; id: string }; status?: SessionStatus },
  ): Promise<Session[]> {
    const qb = this.em
      .createQueryBuilder(Session, 's')
      .select('*')
      .where(tenantId === null ? {} : { tenantId })
      .orderBy({ createdAt: 'desc', id: 'desc' })
      .limit(query.pageSize);
    if (query.status) qb.andWhere({ status: query.status });
    if (query.before) {
      qb.andWhere('(s.created_at, s.id) < (?, ?)', [query.before.at, query.before.id]);
    }
    return qb.getResult();
  }

  async countForTenant(tenantId: string): Promise<number> {
    return this.em.count(Session, { tenantId });
  }

  async hasAuthState(sessionId: string): Promise<boolean> {
    return (await this.em.count(SessionAuthState, { sessionId })) > 0;
  }

  async readAuthState(sessionId: string): Promise<SealedState | null> {
    return this.em.findOne(SessionAuthState, { sessionId }, { disableIdentityMap: true });
  }

  /** Stores a new checkpoint over the previous one; versions count checkpoints. */
  async writeAuthState(sessionId: string, sealed: SealedState, now: Date): Promise<void> {
    await this.em.getConnection().execute(
      `insert into "session_auth_state" ("session_id", "version", "key_id", "iv", "ciphertext", "tag", "updated_at")
         values (?, 1, ?, ?, ?, ?, ?)
         on conflict ("session_id") do update set "version" = "session_auth_state"."version" + 1,
           "key_id" = excluded."key_id", "iv" = excluded."iv", "ciphertext" = excluded."ciphertext",
           "tag" = excluded."tag", "updated_at" = excluded."updated_at"`,
      [sessionId, sealed.keyId, sealed.iv, sealed.ciphertext, sealed.tag, now],
      'run',
      this.em.getTransactionContext(),
    );
  }

  async wipeAuthState(sessionId: string): Promise<void> {
    await this.em.nativeDelete(SessionAuthState, { sessionId });
  }

  /** PENDING sessions in queue order, locked; others placing at the same time skip them. */
  async lockPending(limit: number, now: Date): Promise<Session[]> {
    return this.em.find(
      Session,
      { status: 'PENDING', $or: [{ placeAfter: null }, { placeAfter: { $lte: now } }] },
      { orderBy: { pendingSince: 'asc', id: 'asc' }, limit, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
    );
  }

  /** Sessions each worker runs now (the slots they take). */
  async assignedCounts(): Promise<Map<string, number>> {
    const rows = await this.em
      .getConnection()
      .execute<{ worker_id: string; n: string }[]>(
        `select "worker_id", count(*) as n from "session" where "status" in ('STARTING', 'SCAN_QR', 'WORKING') and "worker_id" is not null group by "worker_id"`,
        [],
        'all',
        this.em.getTransactionContext(),
      );
    return new Map(rows.map((r) => [r.worker_id, Number(r.n)]));
  }

  /**
   * Free slots on the worker for this transaction: locks the worker row (so
   * placements on one worker queue up behind each other, on any replica) and
   * counts its sessions after the lock, which sees every committed placement.
   * Zero unless the worker is ONLINE and ACTIVE.
   */
  async freeSlots(workerId: string): Promise<number> {
    const ctx: unknown = this.em.getTransactionContext();
    const connection = this.em.getConnection();
    const [worker] = await connection.execute<{ capacity: number; status: string; schedulability: string }[]>(
      `select "capacity", "status", "schedulability" from "worker" where "id" = ? for update`,
      [workerId],
      'all',
      ctx,
    );
    if (!worker || worker.status !== 'ONLINE' || worker.schedulability !== 'ACTIVE') return 0;
    const [row] = await connection.execute<{ n: string }[]>(
      `select count(*) as n from "session" where "worker_id" = ? and "status" in ('STARTING', 'SCAN_QR', 'WORKING')`,
      [workerId],
      'all',
      ctx,
    );
    return worker.capacity - Number(row?.n ?? 0);
  }

  /** Sessions a worker runs according to the database. */
  async assignedTo(workerId: string): Promise<Session[]> {
    return this.em.find(Session, { workerId, status: { $in: ASSIGNED_STATUSES } });
  }

  /** Each tenant's sessions by worker, for spreading. */
  async tenantSpread(tenantIds: string[]): Promise<{ tenant_id: string; worker_id: string; n: string }[]> {
    if (tenantIds.length === 0) return [];
    return this.em.getConnection().execute(
      `select "tenant_id", "worker_id", count(*) as n from "session"
          where "tenant_id" = any(?::uuid[]) and "worker_id" is not null and "status" in ('STARTING', 'SCAN_QR', 'WORKING')
          group by "tenant_id", "worker_id"`,
      [`{${tenantIds.join(',')}}`],
      'all',
      this.em.getTransactionContext(),
    );
  }
}
