import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type AdminService,
  CordonWorkerResponseSchema,
  CreateJoinTokenResponseSchema,
  DrainWorkerResponseSchema,
  GetFleetSummaryResponseSchema,
  ListWorkerEventsResponseSchema,
  MaintenanceSchema,
  RemoveWorkerResponseSchema,
  SetMaintenanceResponseSchema,
  UncordonWorkerResponseSchema,
  WatchWorkersResponseSchema,
  GetWorkerResponseSchema,
  ListWorkersResponseSchema,
  SetUserStatusResponseSchema,
  ShutdownWorkerResponseSchema,
  ReleaseReassignmentHoldResponseSchema,
} from '../../gen/switchboard/v1/admin_pb.js';
import { ReassignmentHoldSchema, WorkerMetricsRollupSchema } from '../../gen/switchboard/v1/fleet_pb.js';
import type { ReassignmentHold } from '../fleet/failure-guard.js';
import type { WorkerMetricsRollup } from '../fleet/worker-metrics-rollup.entity.js';
import type { JoinTokenService } from '../fleet/join-token.service.js';
import type { AuditService } from '../audit/audit.service.js';
import type { MaintenanceState } from '../fleet/maintenance.service.js';
import type { AuthService } from '../identity/auth.service.js';
import { userStatusFromProto, userToProto } from '../identity/identity-mapping.handler.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import type { Fleet } from '../fleet/fleet.module.js';
import { statusFromProto, workerEventToProto, workerToProto } from '../fleet/fleet-mapping.handler.js';
import type { WorkerChange } from '../fleet/fleet-changes.js';
import type { AdminAction } from '../fleet/worker.state.js';
import { parseLabelSelector } from '../scheduling/label-selector.js';
import { AsyncQueue } from '../platform/async-queue.js';
import {
  decodePageToken,
  decodeTimeCursor,
  encodePageToken,
  encodeTimeCursor,
  normalisePageSize,
} from '../fleet/page-token.js';
import { WorkerRepository } from '../fleet/worker.repository.js';
import { DomainError } from '../../lib/errors.js';
import { requestEntityManager } from '../transport/interceptors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the admin handler works with. */
interface AdminHandlerDependencies {
  fleet: Fleet;
  joinTokens: JoinTokenService;
  auth: AuthService;
  audit: AuditService;
}

/** AdminService: operators' view of the fleet (protobuf <-> domain; rules in the fleet and identity). */
export function createAdminServiceHandler(deps: AdminHandlerDependencies): ServiceImpl<typeof AdminService> {
  return { ...workerQueries(deps), ...workerActions(deps), ...platformControls(deps) };
}

/** Reading the fleet: workers, their events and metrics, the summary, the live feed. */
function workerQueries({ fleet }: AdminHandlerDependencies) {
  const { maintenance } = fleet;
  return {
    async listWorkers(req, ctx: HandlerContext) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const repository = new WorkerRepository(requestEntityManager(ctx));
      const workers = await fleet.admin.listWorkers(repository, {
        status: statusFromProto(req.status),
        afterName: decodePageToken(req.pageToken),
        pageSize: pageSize + 1,
        agentVersion: req.agentVersion || undefined,
        labels: parseLabelSelector(req.labelSelector),
      });
      const page = workers.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListWorkersResponseSchema, {
        workers: page.map(workerToProto),
        nextPageToken: workers.length > pageSize && last ? encodePageToken(last.name) : '',
      });
    },

    async getWorker(req, ctx: HandlerContext) {
      if (!UUID.test(req.workerId)) throw DomainError.invalidArgument('worker_id', 'must be a worker id (UUID)');
      const repository = new WorkerRepository(requestEntityManager(ctx));
      const worker = await fleet.admin.getWorker(repository, req.workerId);
      const history = await fleet.admin.metricsHistory(repository, worker.id, req.historyMinutes || 60);
      return create(GetWorkerResponseSchema, {
        worker: workerToProto(worker),
        metricsHistory: history.map(rollupToProto),
      });
    },

    async listWorkerEvents(req, ctx: HandlerContext) {
      const repository = new WorkerRepository(requestEntityManager(ctx));
      const worker = await fleet.admin.getWorker(repository, req.workerId);
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });

      const events = await repository.listEvents(worker.id, {
        pageSize: pageSize + 1,
        before: decodeTimeCursor(req.pageToken),
      });
      const page = events.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListWorkerEventsResponseSchema, {
        events: page.map((event) => workerEventToProto(event, worker.name)),
        nextPageToken: events.length > pageSize && last ? encodeTimeCursor(last) : '',
      });
    },

    async *watchWorkers(_req, ctx: HandlerContext) {
      // Subscribe before the snapshot so no change falls between the two.
      const changes = new AsyncQueue<WorkerChange>();
      const stop = fleet.changes.watch((change) => changes.push(change));
      const end = () => changes.close();
      ctx.signal.addEventListener('abort', end, { once: true });
      try {
        const snapshot = await new WorkerRepository(requestEntityManager(ctx)).findAll();
        yield create(WatchWorkersResponseSchema, { snapshot: snapshot.map(workerToProto) });
        for await (const change of changes) {
          yield create(WatchWorkersResponseSchema, {
            worker: workerToProto(change.worker),
            event: workerEventToProto(change.event, change.worker.name),
          });
        }
      } finally {
        stop();
        ctx.signal.removeEventListener('abort', end);
      }
    },

    async getFleetSummary(_req, ctx: HandlerContext) {
      const em = requestEntityManager(ctx);
      const summary = await fleet.admin.summary(new WorkerRepository(em));
      return create(GetFleetSummaryResponseSchema, {
        ...summary,
        maintenance: maintenanceToProto(await maintenance.current(em)),
        reassignmentHold: holdToProto(await fleet.holds.current(em)),
      });
    },
  } satisfies Partial<ServiceImpl<typeof AdminService>>;
}

/** Operators' actions on workers; each goes to the audit log as well as the worker's own events. */
function workerActions({ fleet, audit }: AdminHandlerDependencies) {
  const audited = async (ctx: HandlerContext, action: string, workerId: string, reason: string) => {
    const em = requestEntityManager(ctx);
    audit.record(
      em,
      { action: `worker.${action}`, tenantId: null, targetType: 'worker', targetId: workerId, details: { reason } },
      { principal: requirePrincipal(ctx), origin: ctx.values.get(originKey) },
    );
    await em.flush();
  };
  const adminAction = async (ctx: HandlerContext, workerId: string, action: AdminAction, reason: string) => {
    const principal = requirePrincipal(ctx);
    const worker = await fleet.admin.applyAdminAction(new WorkerRepository(requestEntityManager(ctx)), {
      workerId,
      action,
      reason,
      actorUserId: principal.kind === 'user' ? principal.userId : null,
    });
    await audited(ctx, action, workerId, reason);
    return worker;
  };
  return {
    async cordonWorker(req, ctx: HandlerContext) {
      const worker = await adminAction(ctx, req.workerId, 'cordon', req.reason);
      return create(CordonWorkerResponseSchema, { worker: workerToProto(worker) });
    },

    async uncordonWorker(req, ctx: HandlerContext) {
      const worker = await adminAction(ctx, req.workerId, 'uncordon', '');
      return create(UncordonWorkerResponseSchema, { worker: workerToProto(worker) });
    },

    async drainWorker(req, ctx: HandlerContext) {
      const worker = await adminAction(ctx, req.workerId, 'drain', req.reason);
      const notified =
        worker.status === 'ONLINE'
          ? await fleet.router.sendCommand(worker.id, { kind: 'drain', reason: req.reason || 'drained by an operator' })
          : { delivered: false, detail: 'not connected' };
      return create(DrainWorkerResponseSchema, {
        worker: workerToProto(worker),
        sessionsRemaining: await new WorkerRepository(requestEntityManager(ctx)).assignedSessionCount(worker.id),
        agentNotified: notified.delivered,
      });
    },

    async removeWorker(req, ctx: HandlerContext) {
      await fleet.admin.assertNotLastWorker(new WorkerRepository(requestEntityManager(ctx)), req.workerId, req.force);
      const worker = await adminAction(ctx, req.workerId, 'remove', req.force ? 'forced: the last worker' : '');
      return create(RemoveWorkerResponseSchema, { worker: workerToProto(worker) });
    },

    async shutdownWorker(req, ctx: HandlerContext) {
      const principal = requirePrincipal(ctx);
      const worker = await fleet.admin.getWorker(new WorkerRepository(requestEntityManager(ctx)), req.workerId);
      if (worker.status !== 'ONLINE') {
        throw new DomainError(
          'FAILED_PRECONDITION',
          `the worker is ${worker.status.toLowerCase()}: nothing to shut down`,
        );
      }
      await audited(ctx, 'shutdown', worker.id, req.reason);
      const result = await fleet.router.sendCommand(worker.id, {
        kind: 'shutdown',
        reason: req.reason || `shut down by an operator (${principal.kind === 'user' ? principal.userId : 'api key'})`,
      });
      return create(ShutdownWorkerResponseSchema, {
        worker: workerToProto(worker),
        agentNotified: result.delivered,
        detail: result.delivered ? '' : result.detail,
      });
    },
  } satisfies Partial<ServiceImpl<typeof AdminService>>;
}

/** The platform's switches: join tokens, users' status, maintenance, the reassignment hold. */
function platformControls({ fleet, joinTokens, auth }: AdminHandlerDependencies) {
  const { maintenance } = fleet;
  return {
    async createJoinToken(req, ctx: HandlerContext) {
      const { joinToken, token } = await joinTokens.create(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          description: req.description,
          ttlMs: (req.ttlSeconds || 3600) * 1000,
          maxUses: req.maxUses || 1,
        },
        ctx.values.get(originKey),
      );
      return create(CreateJoinTokenResponseSchema, {
        joinTokenId: joinToken.id,
        token,
        expiresAt: timestampFromDate(joinToken.expiresAt),
        maxUses: joinToken.maxUses,
      });
    },

    async setUserStatus(req, ctx: HandlerContext) {
      const user = await auth.setUserStatus(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        { userId: req.userId, status: userStatusFromProto(req.status) },
        ctx.values.get(originKey),
      );
      return create(SetUserStatusResponseSchema, { user: userToProto(user) });
    },

    async releaseReassignmentHold(req, ctx: HandlerContext) {
      const hold = await fleet.holds.release(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        req.reason,
        ctx.values.get(originKey),
      );
      return create(ReleaseReassignmentHoldResponseSchema, { reassignmentHold: holdToProto(hold) });
    },

    async setMaintenance(req, ctx: HandlerContext) {
      const state = await maintenance.set(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        { enabled: req.enabled, message: req.message },
        ctx.values.get(originKey),
      );
      return create(SetMaintenanceResponseSchema, { maintenance: maintenanceToProto(state) });
    },
  } satisfies Partial<ServiceImpl<typeof AdminService>>;
}

function maintenanceToProto(state: MaintenanceState) {
  return create(MaintenanceSchema, {
    enabled: state.enabled,
    message: state.message,
    since: state.since ? timestampFromDate(state.since) : undefined,
    setByUserId: state.setByUserId ?? '',
  });
}

function holdToProto(hold: ReassignmentHold) {
  return create(ReassignmentHoldSchema, {
    active: hold.active,
    since: hold.since ? timestampFromDate(hold.since) : undefined,
    reason: hold.reason,
    failedWorkers: hold.failedWorkers,
    fleetSize: hold.fleetSize,
  });
}

function rollupToProto(rollup: WorkerMetricsRollup) {
  return create(WorkerMetricsRollupSchema, {
    minute: timestampFromDate(rollup.minute),
    samples: rollup.samples,
    cpuPercentAvg: rollup.cpuPercentAvg,
    cpuPercentMax: rollup.cpuPercentMax,
    rssBytesMax: BigInt(Math.round(rollup.rssBytesMax)),
    memoryPercentAvg: rollup.memoryPercentAvg,
    eventLoopLagMsMax: rollup.eventLoopLagMsMax,
    sessionCountMax: rollup.sessionCountMax,
  });
}
