import type { Registry } from 'prom-client';
import type { AuditService } from '../audit/audit.service.js';
import type { Config } from '../config.js';
import type { TokenService } from '../identity/token.service.js';
import type { Resources } from '../platform/resources.js';
import { CommandRouter } from './command-router.js';
import { FleetChanges } from './fleet-changes.js';
import { FleetService } from './fleet.service.js';
import type { HeldSession } from './fleet.types.js';
import { HeartbeatBuffer } from './heartbeat-buffer.js';
import type { JoinTokenService } from './join-token.service.js';
import { MaintenanceService } from './maintenance.service.js';
import { ReassignmentHoldService } from './reassignment-hold.service.js';
import { WorkerAdmin } from './worker-admin.service.js';
import { LocalStreams } from './worker-connection.js';
import { WorkerDispatch } from './worker-dispatch.js';
import type { WorkerEvent } from './worker-event.entity.js';
import { WorkerRefusals } from './worker-refusals.js';
import { WorkerRepository } from './worker.repository.js';

/** The fleet capability, built once by the composition root. */
export interface Fleet {
  /** Agent streams, registration, heartbeats and liveness. */
  readonly service: FleetService;
  /** Commands to workers wherever their streams live. */
  readonly router: CommandRouter;
  readonly changes: FleetChanges;
  readonly admin: WorkerAdmin;
  readonly holds: ReassignmentHoldService;
  readonly maintenance: MaintenanceService;
  readonly refusals: WorkerRefusals;
  /** DispatchMessages frames down the streams held here (messaging's dispatch channel). */
  readonly dispatch: WorkerDispatch;
  start(): Promise<void>;
  /** Ends every agent stream (agents reconnect elsewhere) and stops the fleet's timers. */
  shutdown(): Promise<void>;
}

/** What the fleet asks of the sessions capability: the ports it calls. */
export interface FleetPorts {
  /** The decrypted auth state an AssignSession carries (read on the replica holding the stream). */
  loadAuthState: (sessionId: string) => Promise<Uint8Array>;
  /** A worker change this replica committed. */
  onLocalChange: (event: WorkerEvent) => void;
  /** A worker (re)connected to this replica and said what it still runs. */
  onHello: (workerId: string, held: readonly HeldSession[], helloAt: Date) => void;
}

export function createFleet(
  config: Config,
  resources: Resources,
  deps: { tokens: TokenService; joinTokens: JoinTokenService; audit: AuditService; metrics: Registry },
  ports: FleetPorts,
): Fleet {
  const { clock, logger } = resources;
  const streams = new LocalStreams();
  const refusals = new WorkerRefusals(deps.metrics, {
    clock,
    logger: logger.child({ component: 'fleet' }),
    logIntervalMs: config.workerWarningIntervalMs,
  });
  const router = new CommandRouter(resources, streams, config.replicaId, {
    loadAuthState: ports.loadAuthState,
    refusals,
  });
  const changes = new FleetChanges(resources, ports.onLocalChange);
  const admin = new WorkerAdmin(resources, streams, changes);
  const holds = new ReassignmentHoldService(clock, deps.audit);
  const service = new FleetService(
    resources,
    {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      leaseTtlMs: config.leaseTtlMs,
      sweepIntervalMs: config.sweepIntervalMs,
      failureGraceMs: config.failureGraceMs,
      maxConnectionAgeMs: config.maxConnectionAgeMs,
      metricsFlushIntervalMs: config.metricsFlushIntervalMs,
      replicaId: config.replicaId,
      sweeperLeadershipTtlMs: config.sweeperLeadershipTtlMs,
      guard: { ...config.massFailure, windowMs: config.leaseTtlMs },
    },
    {
      tokens: deps.tokens,
      joinTokens: deps.joinTokens,
      streams,
      changes,
      router,
      admin,
      heartbeats: new HeartbeatBuffer(
        () => new WorkerRepository(resources.orm.em.fork()),
        logger.child({ component: 'fleet' }),
      ),
      holds,
      onHello: ports.onHello,
    },
  );
  return {
    service,
    router,
    changes,
    admin,
    holds,
    maintenance: new MaintenanceService(clock, deps.audit),
    refusals,
    dispatch: new WorkerDispatch(streams),
    start: () => service.start(),
    shutdown: () => service.shutdown(),
  };
}
