import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { AuditService } from '../audit/audit.service.js';
import type { EngineKind } from '../fleet/worker.entity.js';
import { Tenant } from '../identity/account.entity.js';
import { requireTenant } from '../identity/api-key.service.js';
import type { TenantPlan } from '../identity/identity.types.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import type { Resources } from '../platform/resources.js';
import { parseLabelSelector } from '../scheduling/label-selector.js';
import type { SessionEffects } from './session-effects.js';
import type { SessionEvents } from './session-events.js';
import { planSessionCommand } from './session-command.state.js';
import { unexpectedResult, type RequestTarget, type SessionRequests } from './session-requests.js';
import { applyStanding, standingOf } from './session-standing.js';
import type { SessionWatch } from './session-watch.js';
import { Session, type SessionStatus } from './session.entity.js';
import { SessionRepository } from './session.repository.js';
import type { SessionCommand } from './session.state.js';

/** Settings of the sessions capability, compiled from configuration. */
export interface SessionOptions {
  quota: Record<TenantPlan, number>;
  /** The engine of a session created without one. */
  defaultEngine: EngineKind;
}

/** What the tenant use cases work with. */
export interface SessionServiceDependencies {
  watch: SessionWatch;
  effects: SessionEffects;
  requests: SessionRequests;
  /** Asks for a placement round soon (a session waits, or a slot freed). */
  placement: { request(): void };
  audit: AuditService;
  events: SessionEvents;
}

/**
 * The tenant's sessions: create, read, the lifecycle commands (rules in
 * session.state.ts), QR and pairing codes, and the sandbox's simulated
 * phone. Placement (src/scheduling) and what workers report
 * (worker-reports.service.ts) change sessions too, through the same rules.
 */
export class SessionService {
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly options: SessionOptions,
    private readonly deps: SessionServiceDependencies,
  ) {
    this.log = resources.logger.child({ component: 'sessions' });
  }

  async create(
    em: EntityManager,
    principal: Principal,
    input: {
      name: string;
      /** Absent: the configured default engine. */
      engine: EngineKind | undefined;
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
    const { session, announcement } = await em.transactional(async (tx) => {
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
        engine: input.engine ?? this.options.defaultEngine,
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
        linkedAt: null,
        sendPolicy: null,
        createdAt: now,
        updatedAt: now,
      });
      const plan = planSessionCommand(standingOf(created, false), { kind: 'start' });
      // A new session has no status before this one.
      const change = { ...applyStanding(created, plan.next, now), previousStatus: null };
      const appended = await this.deps.events.append(tx, [change], now);
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
      return { session: created, announcement: appended };
    });
    this.log.info({ sessionId: session.id, tenantId, engine: session.engine }, 'session created');
    await this.deps.watch.announce(session);
    await this.deps.events.announce(announcement);
    this.deps.placement.request();
    return session;
  }

  async get(em: EntityManager, principal: Principal, id: string): Promise<Session> {
    return new SessionRepository(em).findForTenant(requireTenant(principal), id);
  }

  /**
   * GetSession: a tenant reads its own sessions; a platform admin acting on
   * the platform (not in a tenant) reads any, and each such read is audited.
   */
  async read(em: EntityManager, principal: Principal, id: string, origin: RequestOrigin): Promise<Session> {
    if (!actsOnPlatform(principal)) return this.get(em, principal, id);
    const session = await new SessionRepository(em).findById(id);
    await this.auditAdminRead(em, principal, origin, {
      action: 'session.viewed',
      targetId: id,
      tenantId: session.tenantId,
    });
    return session;
  }

  /** ListSessions: the caller's tenant, or for a platform admin every tenant's (or one's), audited. */
  async list(
    em: EntityManager,
    principal: Principal,
    query: { pageSize: number; before?: { at: Date; id: string }; status?: SessionStatus; tenantId?: string },
    origin: RequestOrigin,
  ): Promise<Session[]> {
    if (!actsOnPlatform(principal)) {
      if (query.tenantId && query.tenantId !== principal.tenantId) {
        throw new DomainError('PERMISSION_DENIED', 'only platform admins choose the tenant; yours is implied');
      }
      return new SessionRepository(em).list(requireTenant(principal), query);
    }
    const tenantId = query.tenantId ?? null;
    await this.auditAdminRead(em, principal, origin, {
      action: 'sessions.listed',
      targetId: tenantId ?? '*',
      tenantId,
    });
    return new SessionRepository(em).list(tenantId, query);
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
    const { session, effects, announcement } = await em.transactional(async (tx) => {
      const repository = new SessionRepository(tx);
      const locked = await repository.lockForTenant(tenantId, id);
      const plan = planSessionCommand(standingOf(locked, await repository.hasAuthState(id)), command);
      const appended = await this.deps.events.append(tx, [applyStanding(locked, plan.next, now)], now);
      for (const effect of plan.effects) {
        if (effect.kind === 'wipeAuthState') await repository.wipeAuthState(id);
        if (effect.kind === 'deleteSession') tx.remove(locked);
      }
      this.deps.audit.record(
        tx,
        { action: `session.${command.kind}`, tenantId, targetType: 'session', targetId: id },
        { principal, origin },
      );
      return { session: locked, effects: plan.effects, announcement: appended };
    });
    this.log.info({ sessionId: id, command: command.kind, status: session.status }, 'session command');
    await this.deps.effects.carryOut(session.id, effects);
    await this.deps.watch.announce(session, { deleted: command.kind === 'delete' });
    await this.deps.events.announce(announcement);
    // A stop, logout or delete frees a slot a waiting session may take.
    this.deps.placement.request();
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
    const result = await this.deps.requests.request(
      { sessionId: session.id, epoch: session.epoch, workerId: effect.workerId },
      { kind: 'requestPairingCode', phoneNumber },
    );
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
    const result = await this.deps.requests.request(this.targetOf(session), {
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
    const result = await this.deps.requests.request(this.targetOf(session), {
      kind: 'sandboxInbound',
      from: input.from,
      text: input.text,
    });
    if (result.kind !== 'messageId') throw unexpectedResult(result);
    return result.messageId;
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

  /** Platform admins reading tenants' sessions leave a trace in the audit log. */
  private async auditAdminRead(
    em: EntityManager,
    principal: Principal,
    origin: RequestOrigin,
    entry: { action: string; targetId: string; tenantId: string | null },
  ): Promise<void> {
    this.deps.audit.record(
      em,
      { action: entry.action, tenantId: entry.tenantId, targetType: 'session', targetId: entry.targetId },
      { principal, origin },
    );
    await em.flush();
  }

  private targetOf(session: Session): RequestTarget {
    return { sessionId: session.id, epoch: session.epoch, workerId: session.workerId as string };
  }
}

/** A platform admin signed in without a tenant acts on the whole platform (read-only for sessions). */
function actsOnPlatform(principal: Principal): boolean {
  return principal.kind === 'user' && principal.platformAdmin && principal.tenantId === null;
}
