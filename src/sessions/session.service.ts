import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { FleetService } from '../fleet/fleet.service.js';
import type { CommandResult, RequestAction, RequestResult, WorkerSessionEvent } from '../fleet/fleet.types.js';
import type { MaintenanceService } from '../fleet/maintenance.service.js';
import type { WorkerEvent } from '../fleet/worker-event.entity.js';
import { CLEAN_CLOSE_REASON } from '../fleet/worker-connection.js';
import { Worker, type EngineKind } from '../fleet/worker.entity.js';
import { parseLabelSelector } from '../fleet/worker.state.js';
import { requireTenant } from '../identity/api-key.service.js';
import { Tenant } from '../identity/account.entity.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import type { AuditService } from '../audit/audit.service.js';
import type { TenantPlan } from '../identity/identity.types.js';
import type { MessageService } from '../messaging/message.service.js';
import { DomainError, type DomainErrorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Resources } from '../platform/resources.js';
import type { AuthStateCipher } from './auth-state-cipher.js';
import { planBatch, type FleetView, type PlacementRequest, type TenantSpread, zoneOf } from './scheduler.js';
import { Session, type SessionStatus } from './session.entity.js';
import { SessionRepository } from './session.repository.js';
import { RefusedSessionEvents, SESSION_GONE } from './refused-session-events.js';
import {
  applySessionEvent,
  fenceAttempt,
  planSessionCommand,
  type SessionCommand,
  type SessionEffect,
  type SessionEndReason,
  type SessionEvent,
  type SessionStanding,
} from './session.state.js';

const CHANGES_CHANNEL = 'sessions:changes';
const END_REASONS: readonly SessionEndReason[] = [
  'STOPPED',
  'QR_TIMEOUT',
  'LOGGED_OUT',
  'CONNECTION_REPLACED',
  'CONNECTION_LOST',
];
/** Placement looks at this many waiting sessions per round (oldest first). */
const PLACEMENT_BATCH = 500;

/** A change to one session, as WatchSession streams it. */
export interface SessionChange {
  session: Session;
  qr?: { payload: string; expiresAt: Date; sequence: number };
  /** The session was deleted; the last change a watcher gets. */
  deleted?: boolean;
}

/** Settings of the sessions capability, compiled from configuration. */
export interface SessionOptions {
  quota: Record<TenantPlan, number>;
  requestTimeoutMs: number;
  /** How often every replica looks for PENDING sessions it can place (besides fleet changes). */
  placementIntervalMs: number;
}

/**
 * The tenant's sessions: their lifecycle (rules in session.state.ts),
 * placement on workers (scheduler.ts decides, the database commits), the
 * commands and requests sent to the worker running each, and what workers
 * report back, fenced by the assignment epoch.
 */
export class SessionService {
  private readonly log: Logger;
  private placing = false;
  private placeAgain = false;
  private placementTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly watchers = new Map<string, Set<(change: SessionChange) => void>>();
  /** Session events refused: counted, warned about sparingly, stale ones answered with a StopSession. */
  private readonly refused: RefusedSessionEvents;

  constructor(
    private readonly resources: Resources,
    private readonly options: SessionOptions,
    private readonly deps: {
      fleet: FleetService;
      cipher: AuthStateCipher;
      maintenance: MaintenanceService;
      messages: MessageService;
      audit: AuditService;
    },
  ) {
    this.log = resources.logger.child({ component: 'sessions' });
    this.refused = new RefusedSessionEvents(deps.fleet, this.log);
  }

  /** Session events refused because they carried a stale epoch or came from the wrong worker. */
  get staleEvents(): number {
    return this.refused.staleEvents;
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.resources.store.subscribe(CHANGES_CHANNEL, (message) => {
      void this.deliver(message);
    });
    this.deps.fleet.onLocalChange((event) => void this.onWorkerChange(event));
    this.deps.fleet.onHello((workerId, held, helloAt) => void this.reconcile(workerId, held, helloAt));
    this.deps.fleet.setAssignmentLoader((sessionId) => this.authStateFor(sessionId));
    this.placementTimer = setInterval(() => void this.placePending(), this.options.placementIntervalMs);
    this.placementTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.placementTimer);
    await this.unsubscribe?.();
  }

  // ---------- tenant API ----------

  async create(
    em: EntityManager,
    principal: Principal,
    input: {
      name: string;
      engine: EngineKind;
      labelSelector: string;
      affinities: { labelSelector: string; weight: number }[];
    },
    origin: RequestOrigin,
  ): Promise<Session> {
    const tenantId = requireTenant(principal);
    // Malformed selectors are refused before anything is stored.
    parseLabelSelector(input.labelSelector);
    for (const affinity of input.affinities) parseLabelSelector(affinity.labelSelector);
    const now = this.resources.clock.now();
    const session = await em.transactional(async (tx) => {
      // The tenant row lock serialises creates of one tenant, so the quota holds under concurrency.
      const tenant = await tx.findOneOrFail(Tenant, { id: tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      const quota = this.options.quota[tenant.plan];
      const existing = await new SessionRepository(tx).countForTenant(tenantId);
      if (existing >= quota) {
        throw new DomainError(
          'RESOURCE_EXHAUSTED',
          `the ${tenant.plan} plan allows ${quota} sessions and the tenant has ${existing}; delete one or upgrade the plan`,
          { details: { quota, plan: tenant.plan } },
        );
      }
      const created = tx.create(Session, {
        id: randomUUID(),
        tenantId,
        name: input.name.trim(),
        engine: input.engine,
        status: 'STOPPED',
        statusReason: '',
        labelSelector: input.labelSelector.trim(),
        affinities: input.affinities.map((a) => ({ labelSelector: a.labelSelector.trim(), weight: a.weight })),
        workerId: null,
        epoch: 1,
        failedAttempts: 0,
        placeAfter: null,
        account: null,
        qrPayload: null,
        qrExpiresAt: null,
        qrSequence: 0,
        pendingSince: null,
        createdAt: now,
        updatedAt: now,
      });
      const plan = planSessionCommand(standingOf(created, false), { kind: 'start' });
      applyStanding(created, plan.next, now);
      this.deps.audit.record(
        tx,
        {
          action: 'session.created',
          tenantId,
          targetType: 'session',
          targetId: created.id,
          details: { name: created.name, engine: created.engine },
        },
        { principal, origin },
      );
      try {
        await tx.flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) {
          throw new DomainError('ALREADY_EXISTS', `a session named ${JSON.stringify(created.name)} already exists`);
        }
        throw error;
      }
      return created;
    });
    this.log.info({ sessionId: session.id, tenantId, engine: session.engine }, 'session created');
    await this.announce(session);
    void this.placePending();
    return session;
  }

  async get(em: EntityManager, principal: Principal, id: string): Promise<Session> {
    return new SessionRepository(em).findForTenant(requireTenant(principal), id);
  }

  async list(
    em: EntityManager,
    principal: Principal,
    query: { pageSize: number; before?: { at: Date; id: string }; status?: SessionStatus },
  ): Promise<Session[]> {
    return new SessionRepository(em).list(requireTenant(principal), query);
  }

  /** start, stop, restart, logout or delete. */
  async command(
    em: EntityManager,
    principal: Principal,
    id: string,
    command: Extract<SessionCommand, { kind: 'start' | 'stop' | 'restart' | 'logout' | 'delete' }>,
    origin: RequestOrigin,
  ): Promise<Session> {
    const tenantId = requireTenant(principal);
    const now = this.resources.clock.now();
    const { session, effects } = await em.transactional(async (tx) => {
      const repository = new SessionRepository(tx);
      const locked = await repository.lockForTenant(tenantId, id);
      const plan = planSessionCommand(standingOf(locked, await repository.hasAuthState(id)), command);
      applyStanding(locked, plan.next, now);
      // The tenant asked again: start afresh, without the backoff of earlier failures.
      locked.failedAttempts = 0;
      locked.placeAfter = null;
      for (const effect of plan.effects) {
        if (effect.kind === 'wipeAuthState') await repository.wipeAuthState(id);
        if (effect.kind === 'deleteSession') tx.remove(locked);
      }
      this.deps.audit.record(
        tx,
        { action: `session.${command.kind}`, tenantId, targetType: 'session', targetId: id },
        { principal, origin },
      );
      return { session: locked, effects: plan.effects };
    });
    this.log.info({ sessionId: id, command: command.kind, status: session.status }, 'session command');
    await this.afterCommit(session, effects);
    await this.announce(session, { deleted: command.kind === 'delete' });
    // A stop, logout or delete frees a slot a waiting session may take.
    void this.placePending();
    return session;
  }

  /** The latest QR code; only while the session waits for a scan. */
  async qrCode(
    em: EntityManager,
    principal: Principal,
    id: string,
  ): Promise<{ payload: string; expiresAt: Date; sequence: number }> {
    const session = await this.get(em, principal, id);
    planSessionCommand(standingOf(session, false), { kind: 'getQr' });
    if (!session.qrPayload || !session.qrExpiresAt) {
      throw new DomainError('UNAVAILABLE', 'the worker has not shown a QR code yet; try again in a moment');
    }
    return { payload: session.qrPayload, expiresAt: session.qrExpiresAt, sequence: session.qrSequence };
  }

  async requestPairingCode(
    em: EntityManager,
    principal: Principal,
    id: string,
    phoneNumber: string,
  ): Promise<{ code: string; expiresAt: Date }> {
    const session = await this.get(em, principal, id);
    const plan = planSessionCommand(standingOf(session, false), { kind: 'requestPairingCode', phoneNumber });
    const effect = plan.effects.find((e) => e.kind === 'requestPairingCodeOnWorker');
    if (!effect) throw new DomainError('INTERNAL', 'no pairing-code effect planned');
    const result = await this.request(effect.workerId, session, { kind: 'requestPairingCode', phoneNumber });
    if (result.kind !== 'pairingCode') throw unexpectedResult(result);
    return { code: result.code, expiresAt: new Date(result.expiresAt) };
  }

  /** SandboxService.ScanQr: the simulated phone scans the code. */
  async sandboxScan(
    em: EntityManager,
    principal: Principal,
    input: { sessionId: string; phoneNumber: string; pushName: string; qrPayload: string; pairingCode: string },
  ): Promise<void> {
    const session = await this.sandboxSession(em, principal, input.sessionId);
    // Scanning needs a QR code on show: the same rule as reading it.
    planSessionCommand(standingOf(session, false), { kind: 'getQr' });
    const result = await this.request(session.workerId as string, session, {
      kind: 'sandboxScan',
      phoneNumber: input.phoneNumber,
      pushName: input.pushName,
      qrPayload: input.qrPayload,
      pairingCode: input.pairingCode,
    });
    if (result.kind !== 'done') throw unexpectedResult(result);
  }

  /** SandboxService.InjectInbound: someone sends the session's account a message. */
  async sandboxInject(
    em: EntityManager,
    principal: Principal,
    input: { sessionId: string; from: string; text: string },
  ): Promise<string> {
    const session = await this.sandboxSession(em, principal, input.sessionId);
    planSessionCommand(standingOf(session, false), { kind: 'send' });
    const result = await this.request(session.workerId as string, session, {
      kind: 'sandboxInbound',
      from: input.from,
      text: input.text,
    });
    if (result.kind !== 'messageId') throw unexpectedResult(result);
    return result.messageId;
  }

  /** The worker and epoch a message for this session goes to; FAILED_PRECONDITION unless WORKING. */
  routeForSend(session: Session): { workerId: string; epoch: number } {
    const plan = planSessionCommand(standingOf(session, false), { kind: 'send' });
    const effect = plan.effects.find((e) => e.kind === 'sendOnWorker');
    if (!effect) throw new DomainError('INTERNAL', 'no send effect planned');
    return { workerId: effect.workerId, epoch: effect.epoch };
  }

  /**
   * Sends a request to the worker running the session and waits for its
   * answer within the request deadline. A worker that cannot be reached is
   * UNAVAILABLE (the caller may retry); the worker's own refusals keep
   * their code (INVALID_ARGUMENT for a bad recipient...).
   */
  async request(
    workerId: string,
    session: Pick<Session, 'id' | 'epoch'>,
    action: RequestAction,
  ): Promise<Exclude<RequestResult, { kind: 'error' }>> {
    const deadline = new Date(this.resources.clock.now().getTime() + this.options.requestTimeoutMs);
    const outcome: CommandResult = await this.deps.fleet.sendCommand(
      workerId,
      { kind: 'request', sessionId: session.id, epoch: session.epoch, deadline: deadline.toISOString(), action },
      this.options.requestTimeoutMs,
    );
    if (!outcome.delivered || !outcome.result) {
      throw new DomainError('UNAVAILABLE', `the session's worker did not answer (${outcome.detail}); retry`, {
        details: { retryable: true },
      });
    }
    if (outcome.result.kind === 'error') {
      throw new DomainError(domainCode(outcome.result.code), outcome.result.message);
    }
    return outcome.result;
  }

  // ---------- watching ----------

  /** Calls `onChange` with every change of the session (from any replica) until the returned function is called. */
  watch(sessionId: string, onChange: (change: SessionChange) => void): () => void {
    let listeners = this.watchers.get(sessionId);
    if (!listeners) {
      listeners = new Set();
      this.watchers.set(sessionId, listeners);
    }
    listeners.add(onChange);
    return () => {
      listeners.delete(onChange);
      if (listeners.size === 0) this.watchers.delete(sessionId);
    };
  }

  /**
   * Tells every replica's watchers. The change carries the session as this
   * commit left it (not just its id), so watchers see every state in order
   * instead of whatever a later read finds.
   */
  private async announce(
    session: Session,
    change: { qr?: SessionChange['qr']; deleted?: boolean } = {},
  ): Promise<void> {
    try {
      const { qr, deleted } = change;
      await this.resources.store.publish(
        CHANGES_CHANNEL,
        JSON.stringify({
          sessionId: session.id,
          session: deleted ? undefined : snapshotOf(session),
          qr: qr ? { ...qr, expiresAt: qr.expiresAt.toISOString() } : undefined,
          deleted,
        }),
      );
    } catch (error) {
      this.log.warn({ err: error, sessionId: session.id }, 'could not announce a session change');
    }
  }

  private async deliver(raw: string): Promise<void> {
    try {
      const message = JSON.parse(raw) as {
        sessionId: string;
        session?: SessionSnapshot;
        qr?: { payload: string; expiresAt: string; sequence: number };
        deleted?: boolean;
      };
      const listeners = this.watchers.get(message.sessionId);
      if (!listeners || listeners.size === 0) return;
      if (message.deleted || !message.session) {
        for (const listener of listeners) listener({ session: { id: message.sessionId } as Session, deleted: true });
        return;
      }
      const session = sessionFromSnapshot(message.session);
      const qr = message.qr ? { ...message.qr, expiresAt: new Date(message.qr.expiresAt) } : undefined;
      for (const listener of listeners) listener({ session, qr });
    } catch (error) {
      this.log.warn({ err: error }, 'could not deliver a session change to watchers');
    }
  }

  // ---------- what workers report ----------

  /**
   * A session event from the worker holding `workerId`'s stream. Events of
   * an earlier attempt (stale epoch) or from a worker that does not run the
   * session are refused, logged and counted; the worker is told to stop
   * such a session, since it runs it without the right to.
   */
  async onWorkerEvent(workerId: string, report: WorkerSessionEvent): Promise<void> {
    if (report.event.kind === 'messageStatus' || report.event.kind === 'inbound') {
      return this.onMessageReport(workerId, report, report.event);
    }
    const now = this.resources.clock.now();
    let refused: string | undefined;
    let effects: SessionEffect[] = [];
    let changed = false;
    let qr: SessionChange['qr'];
    let committed: Session | undefined;
    try {
      await this.resources.orm.em.fork().transactional(async (tx) => {
        const repository = new SessionRepository(tx);
        const session = await repository.lock(report.sessionId);
        if (!session) {
          refused = SESSION_GONE;
          return;
        }
        const standing = standingOf(session, false);
        const stamp = { epoch: report.epoch, workerId };
        const { event } = report;
        const lifecycle = (sessionEvent: SessionEvent): boolean => {
          const outcome = applySessionEvent(standing, sessionEvent);
          if (outcome.outcome === 'stale') {
            refused = outcome.reason;
            return false;
          }
          applyStanding(session, outcome.next, now);
          effects = outcome.effects;
          changed = true;
          return true;
        };
        const fenced = (): boolean => {
          const fence = fenceAttempt(standing, stamp);
          if (!fence.current) refused = fence.reason;
          return fence.current;
        };
        switch (event.kind) {
          case 'qr':
            if (lifecycle({ kind: 'engineQr', ...stamp })) {
              session.qrPayload = event.payload;
              session.qrExpiresAt = event.expiresAt;
              session.qrSequence = event.sequence;
              qr = { payload: event.payload, expiresAt: event.expiresAt, sequence: event.sequence };
            }
            break;
          case 'connected':
            if (lifecycle({ kind: 'engineConnected', ...stamp })) {
              session.account = { jid: event.jid, phoneNumber: event.phoneNumber, pushName: event.pushName };
              session.failedAttempts = 0;
              session.placeAfter = null;
            }
            break;
          case 'ended': {
            const reason = END_REASONS.find((r) => r === event.reason) ?? 'CONNECTION_LOST';
            if (lifecycle({ kind: 'engineEnded', ...stamp, reason, detail: event.detail })) {
              if (reason === 'CONNECTION_LOST' && session.status === 'PENDING') {
                // A session that keeps failing must not hammer WhatsApp (or the fleet) in a tight loop.
                session.failedAttempts += 1;
                session.placeAfter = new Date(now.getTime() + retryDelayMs(session.failedAttempts));
                session.statusReason = `${session.statusReason} (attempt ${session.failedAttempts} failed: ${event.detail || 'connection lost'})`;
              }
            }
            break;
          }
          case 'authCheckpoint':
            if (fenced()) {
              await repository.writeAuthState(session.id, this.deps.cipher.seal(session.id, event.state), now);
            }
            break;
          case 'inbound':
          case 'messageStatus':
            break; // handled by onMessageReport, without the lock
        }
        for (const effect of effects) {
          if (effect.kind === 'wipeAuthState') await repository.wipeAuthState(session.id);
        }
        committed = session;
      });
    } catch (error) {
      if (error instanceof DomainError) {
        // ABORTED (epoch ahead) or FAILED_PRECONDITION (an event the state does not expect): a broken worker.
        this.refused.unexpected(workerId, report, error);
        return;
      }
      throw error;
    }
    if (refused !== undefined) {
      this.refused.stale(workerId, report, refused);
      return;
    }
    if (changed) {
      await this.afterCommit({ id: report.sessionId, epoch: report.epoch }, effects);
      if (committed) await this.announce(committed, { qr });
      // An end frees the worker's slot.
      if (report.event.kind === 'ended') void this.placePending();
    }
  }

  /**
   * A worker (re)connected and said what it runs. What it holds under the
   * current epoch stays (a reconnect never stops valid work); what the
   * database gives it but it no longer holds (it restarted, or fenced itself)
   * is placed again; what it holds without the right to (an older epoch,
   * or a session moved elsewhere) it is told to stop.
   */
  async reconcile(workerId: string, held: { sessionId: string; epoch: bigint }[], helloAt: Date): Promise<void> {
    try {
      const em = this.resources.orm.em.fork();
      const assigned = await new SessionRepository(em).assignedTo(workerId);
      const heldEpochs = new Map(held.map((h) => [h.sessionId, Number(h.epoch)]));
      for (const session of assigned) {
        if (heldEpochs.get(session.id) === session.epoch) continue;
        // Placed here (or reported by the worker) after its Hello: the Hello could not list it.
        if (session.updatedAt > helloAt) continue;
        // The epoch the worker should have held: a newer assignment meanwhile makes this stale.
        const { epoch } = session;
        if (await this.applySystemEvent(session.id, () => ({ kind: 'released', epoch, workerId }))) {
          this.log.info({ sessionId: session.id, workerId }, 'worker no longer runs the session; placing it again');
        }
      }
      const rightful = new Map(assigned.map((s) => [s.id, s.epoch]));
      for (const { sessionId, epoch } of held) {
        if (rightful.get(sessionId) === Number(epoch)) continue;
        this.refused.unowned(workerId, sessionId, Number(epoch));
        await this.deps.fleet.sendCommand(workerId, {
          kind: 'stopSession',
          sessionId,
          epoch: Number(epoch),
          reason: 'this worker no longer owns the session',
        });
      }
      await this.placePending();
    } catch (error) {
      this.log.error({ err: error, workerId }, 'could not reconcile the sessions a worker reported');
    }
  }

  /**
   * Delivery receipts and inbound messages, the bulk of what workers report
   * (three receipts per message sent): fenced like every event, but on a
   * plain read of the session, not a row lock and a transaction. They change
   * no session state, and one that races an epoch change is still a true
   * fact about a message; credentials and lifecycle events keep the lock.
   */
  private async onMessageReport(
    workerId: string,
    report: WorkerSessionEvent,
    event: Extract<WorkerSessionEvent['event'], { kind: 'messageStatus' | 'inbound' }>,
  ): Promise<void> {
    const em = this.resources.orm.em.fork();
    const session = await em.findOne(Session, { id: report.sessionId }, { disableIdentityMap: true });
    if (!session) return this.refused.stale(workerId, report, SESSION_GONE);
    let fence: ReturnType<typeof fenceAttempt>;
    try {
      fence = fenceAttempt(standingOf(session, false), { epoch: report.epoch, workerId });
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      this.refused.unexpected(workerId, report, error);
      return;
    }
    if (!fence.current) return this.refused.stale(workerId, report, fence.reason);
    const now = this.resources.clock.now();
    if (event.kind === 'inbound') await this.deps.messages.recordInbound(em, session, event, now);
    else await this.deps.messages.recordStatus(em, session, event.messageId, event.status, now);
  }

  /** The fleet changed (on this replica): place waiting sessions, or move those of a lost worker. */
  private async onWorkerChange(event: WorkerEvent): Promise<void> {
    try {
      switch (event.kind) {
        case 'ONLINE':
          // Placement follows the reconciliation of what the worker holds (reconcile()).
          return;
        case 'UNCORDONED':
          await this.placePending();
          return;
        case 'FAILED':
        case 'REMOVED':
          await this.workerLost(event.workerId, event.kind);
          return;
        case 'OFFLINE':
          // A clean goodbye means the agent stopped its sessions; a lost
          // connection waits for FAILED (the worker may come back within the grace).
          if (event.reason === CLEAN_CLOSE_REASON) await this.workerLost(event.workerId, 'OFFLINE');
          return;
        case 'DRAINING':
          await this.workerDraining(event.workerId);
          return;
        case 'CORDONED':
          return;
      }
    } catch (error) {
      this.log.error({ err: error, workerId: event.workerId, event: event.kind }, 'could not react to a fleet change');
    }
  }

  /**
   * Applies a fleet or reconciliation event to one session under its row
   * lock (the event is built from the epoch read under the lock), then
   * tells watchers and carries out the effects. Returns whether it applied.
   */
  private async applySystemEvent(sessionId: string, eventFor: (epoch: number) => SessionEvent): Promise<boolean> {
    const now = this.resources.clock.now();
    const planned = await this.resources.orm.em.fork().transactional(async (tx) => {
      const session = await new SessionRepository(tx).lock(sessionId);
      if (!session) return undefined;
      const applied = applySessionEvent(standingOf(session, false), eventFor(session.epoch));
      if (applied.outcome === 'stale') return undefined;
      applyStanding(session, applied.next, now);
      return { session, effects: applied.effects };
    });
    if (!planned) return false;
    await this.announce(planned.session);
    await this.afterCommit(planned.session, planned.effects);
    return true;
  }

  /**
   * The worker is draining (an operator, or its own SIGTERM): each of its
   * sessions is stopped there first and placed elsewhere once the worker
   * reports it stopped, so an account never runs on two workers at once.
   */
  private async workerDraining(workerId: string): Promise<void> {
    const sessions = await new SessionRepository(this.resources.orm.em.fork()).assignedTo(workerId);
    for (const { id } of sessions) {
      await this.applySystemEvent(id, (epoch) => ({ kind: 'workerLost', epoch, workerId, cause: 'DRAINED' }));
    }
    if (sessions.length > 0)
      this.log.info({ workerId, sessions: sessions.length }, 'moving sessions off a draining worker');
  }

  /**
   * The worker's sessions are placed again elsewhere (resuming from their
   * auth state, no new scan), unless the mass-failure guard holds reassignment.
   */
  private async workerLost(workerId: string, why: string): Promise<void> {
    const em = this.resources.orm.em.fork();
    const hold = await this.deps.fleet.holds.current(em);
    if (hold.active) {
      this.log.warn({ workerId, hold: hold.reason }, 'worker lost; its sessions stay until the reassignment hold ends');
      return;
    }
    const sessions = await new SessionRepository(em).assignedTo(workerId);
    for (const { id } of sessions) {
      await this.applySystemEvent(id, (epoch) => ({ kind: 'workerLost', epoch, workerId, cause: 'FAILED' }));
    }
    if (sessions.length > 0) {
      this.log.info({ workerId, why, sessions: sessions.length }, 'placing the sessions of a lost worker again');
      await this.placePending();
    }
  }

  private async afterCommit(session: Pick<Session, 'id' | 'epoch'>, effects: readonly SessionEffect[]): Promise<void> {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'requestPlacement':
          void this.placePending();
          break;
        case 'stopOnWorker':
        case 'logoutOnWorker': {
          // Best effort: the epoch already moved on, so even a worker that
          // misses this cannot report for the session any more.
          const command =
            effect.kind === 'stopOnWorker'
              ? ({ kind: 'stopSession', sessionId: session.id, epoch: effect.epoch, reason: 'stopped' } as const)
              : ({ kind: 'logoutSession', sessionId: session.id, epoch: effect.epoch } as const);
          const result = await this.deps.fleet.sendCommand(effect.workerId, command);
          if (!result.delivered) {
            this.log.warn(
              { sessionId: session.id, workerId: effect.workerId, detail: result.detail },
              'worker not told',
            );
          }
          break;
        }
        case 'startOnWorker':
        case 'requestPairingCodeOnWorker':
        case 'sendOnWorker':
        case 'wipeAuthState':
        case 'deleteSession':
          // Done by the caller (placement, the request use cases) or inside the transaction.
          break;
      }
    }
  }

  // ---------- placement ----------

  /**
   * Places PENDING sessions, oldest first, on workers chosen by the
   * scheduler. Atomic per worker: the worker row is locked and its sessions
   * counted before a slot is taken, so concurrent placements (on any
   * replica) never oversubscribe it; the session rows are locked SKIP
   * LOCKED, so no session is placed twice.
   */
  async placePending(): Promise<void> {
    if (this.placing) {
      this.placeAgain = true;
      return;
    }
    this.placing = true;
    try {
      do {
        this.placeAgain = false;
        const placed = await this.placeRound();
        if (placed === PLACEMENT_BATCH) this.placeAgain = true;
      } while (this.placeAgain);
    } catch (error) {
      this.log.error({ err: error }, 'placement round failed; retrying on the next fleet change or interval');
    } finally {
      this.placing = false;
    }
  }

  private async placeRound(): Promise<number> {
    const now = this.resources.clock.now();
    const assignments = await this.resources.orm.em.fork().transactional(async (tx) => {
      const repository = new SessionRepository(tx);
      const pending = await repository.lockPending(PLACEMENT_BATCH, now);
      if (pending.length === 0) return [];
      const maintenance = await this.deps.maintenance.current(tx);
      // Offline workers too, so "nothing fits" can say they exist but are down.
      const workers = await tx.find(Worker, { status: { $ne: 'REMOVED' } }, { disableIdentityMap: true });
      const counts = await repository.assignedCounts();
      const view: FleetView = {
        maintenance: maintenance.enabled,
        workers: workers.map((w) => ({
          id: w.id,
          name: w.name,
          status: w.status,
          schedulability: w.schedulability,
          capacity: w.capacity,
          supportedEngines: w.supportedEngines,
          labels: w.labels,
          assignedSessions: counts.get(w.id) ?? 0,
          metrics: w.metrics
            ? {
                cpuPercent: w.metrics.cpuPercent,
                freeMemoryBytes: w.metrics.freeMemoryBytes,
                totalMemoryBytes: w.metrics.totalMemoryBytes,
              }
            : null,
        })),
      };
      const spreads = await this.tenantSpreads(repository, pending, workers);
      const requests: PlacementRequest[] = pending.map((s) => ({
        sessionId: s.id,
        tenantId: s.tenantId,
        engine: s.engine,
        constraints: parseLabelSelector(s.labelSelector),
        affinities: s.affinities.flatMap((a) =>
          parseLabelSelector(a.labelSelector).map((requirement) => ({ requirement, weight: a.weight })),
        ),
      }));
      const plan = planBatch(view, requests, spreads);
      // Take slots worker by worker in id order (a fixed lock order between replicas).
      const byWorker = new Map<string, Session[]>();
      for (const [i, result] of plan.results.entries()) {
        const session = pending[i] as Session;
        if (!result.placed) {
          session.statusReason = result.message;
          continue;
        }
        byWorker.set(result.workerId, [...(byWorker.get(result.workerId) ?? []), session]);
      }
      const placed: { session: Session; workerId: string }[] = [];
      for (const workerId of [...byWorker.keys()].sort()) {
        const free = await repository.freeSlots(workerId);
        for (const session of (byWorker.get(workerId) ?? []).slice(0, Math.max(0, free))) {
          const outcome = applySessionEvent(standingOf(session, false), {
            kind: 'placed',
            epoch: session.epoch,
            workerId,
          });
          if (outcome.outcome === 'stale') continue;
          applyStanding(session, outcome.next, now);
          placed.push({ session, workerId });
        }
      }
      return placed;
    });
    await Promise.all(
      assignments.map(async ({ session, workerId }) => {
        await this.announce(session);
        await this.deliverAssignment(session, workerId);
      }),
    );
    return assignments.length;
  }

  private async tenantSpreads(
    repository: SessionRepository,
    pending: Session[],
    workers: Worker[],
  ): Promise<Map<string, TenantSpread>> {
    const zones = new Map(workers.map((w) => [w.id, zoneOf(w.labels)]));
    const spreads = new Map<string, { byWorker: Map<string, number>; byZone: Map<string, number> }>();
    for (const row of await repository.tenantSpread([...new Set(pending.map((s) => s.tenantId))])) {
      let spread = spreads.get(row.tenant_id);
      if (!spread) {
        spread = { byWorker: new Map(), byZone: new Map() };
        spreads.set(row.tenant_id, spread);
      }
      const n = Number(row.n);
      spread.byWorker.set(row.worker_id, n);
      const zone = zones.get(row.worker_id);
      if (zone !== undefined) spread.byZone.set(zone, (spread.byZone.get(zone) ?? 0) + n);
    }
    return spreads;
  }

  /** Sends AssignSession with the decrypted auth state; a refusal puts the session back in the queue. */
  /** The session's auth state, decrypted, for the AssignSession the replica holding the stream sends. */
  async authStateFor(sessionId: string): Promise<Uint8Array> {
    const sealed = await new SessionRepository(this.resources.orm.em.fork()).readAuthState(sessionId);
    return sealed ? this.deps.cipher.open(sessionId, sealed) : new Uint8Array();
  }

  private async deliverAssignment(session: Session, workerId: string): Promise<void> {
    const result = await this.deps.fleet.sendCommand(workerId, {
      kind: 'assignSession',
      sessionId: session.id,
      epoch: session.epoch,
      engine: session.engine,
    });
    if (result.delivered) {
      this.log.info({ sessionId: session.id, workerId, epoch: session.epoch }, 'session assigned');
      return;
    }
    this.log.warn({ sessionId: session.id, workerId, detail: result.detail }, 'assignment not accepted; placing again');
    // Unanswered is not refused: the worker may run it anyway. Tell it to stop (best effort; the
    // epoch moves on below, so whatever it reports for this attempt is refused as stale).
    void this.deps.fleet
      .sendCommand(workerId, {
        kind: 'stopSession',
        sessionId: session.id,
        epoch: session.epoch,
        reason: 'the assignment was not acknowledged in time',
      })
      .catch(() => undefined);
    await this.onWorkerEvent(workerId, {
      sessionId: session.id,
      epoch: session.epoch,
      occurredAt: this.resources.clock.now(),
      event: { kind: 'ended', reason: 'CONNECTION_LOST', detail: `assignment refused: ${result.detail}` },
    });
  }

  private async sandboxSession(em: EntityManager, principal: Principal, id: string): Promise<Session> {
    const session = await this.get(em, principal, id);
    if (session.engine !== 'SANDBOX') {
      throw new DomainError('FAILED_PRECONDITION', 'the sandbox only drives sessions on the SANDBOX engine');
    }
    if (!session.workerId) {
      throw new DomainError('FAILED_PRECONDITION', `the session is not running (${session.status}); start it first`);
    }
    return session;
  }
}

/** The part of a session the lifecycle rules read. */
export function standingOf(session: Session, hasAuthState: boolean): SessionStanding {
  return {
    state: session.status,
    reason: session.statusReason,
    epoch: session.epoch,
    workerId: session.workerId,
    hasAuthState,
  };
}

function applyStanding(session: Session, next: SessionStanding, now: Date): void {
  if (next.state === 'PENDING' && session.status !== 'PENDING') session.pendingSince = now;
  if (next.state !== 'PENDING') session.pendingSince = null;
  if (next.state !== 'SCAN_QR') {
    session.qrPayload = null;
    session.qrExpiresAt = null;
  }
  if (next.state === 'LOGGED_OUT') session.account = null;
  session.status = next.state;
  session.statusReason = next.reason;
  session.epoch = next.epoch;
  session.workerId = next.workerId;
  session.updatedAt = now;
}

const CODES: readonly DomainErrorCode[] = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'ABORTED',
];

/** A worker's error code as ours; anything unknown is INTERNAL (never trust a worker to pick UNAUTHENTICATED). */
function domainCode(code: string): DomainErrorCode {
  return CODES.find((c) => c === code) ?? 'INTERNAL';
}

function unexpectedResult(result: RequestResult): DomainError {
  return new DomainError('INTERNAL', `the worker answered with an unexpected result (${result.kind})`);
}

/** What a watcher needs of a session, as JSON between replicas. */
interface SessionSnapshot {
  id: string;
  tenantId: string;
  name: string;
  engine: EngineKind;
  status: SessionStatus;
  statusReason: string;
  labelSelector: string;
  affinities: Session['affinities'];
  workerId: string | null;
  epoch: number;
  account: Session['account'];
  createdAt: string;
  updatedAt: string;
}

function snapshotOf(session: Session): SessionSnapshot {
  return {
    id: session.id,
    tenantId: session.tenantId,
    name: session.name,
    engine: session.engine,
    status: session.status,
    statusReason: session.statusReason,
    labelSelector: session.labelSelector,
    affinities: session.affinities,
    workerId: session.workerId,
    epoch: session.epoch,
    account: session.account,
    createdAt: session.createdAt.toISOString(),
    updatedAt: session.updatedAt.toISOString(),
  };
}

function sessionFromSnapshot(snapshot: SessionSnapshot): Session {
  return Object.assign(new Session(), {
    ...snapshot,
    qrPayload: null,
    qrExpiresAt: null,
    qrSequence: 0,
    pendingSince: null,
    createdAt: new Date(snapshot.createdAt),
    updatedAt: new Date(snapshot.updatedAt),
  });
}

/** Backoff before placing a session again after its n-th failed attempt in a row: 1 s doubling to 5 min, equal jitter. */
export function retryDelayMs(failedAttempts: number): number {
  const ceiling = Math.min(5 * 60_000, 1000 * 2 ** Math.max(0, failedAttempts - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
