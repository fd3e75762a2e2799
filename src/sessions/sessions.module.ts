import type { AuditService } from '../audit/audit.service.js';
import type { Config } from '../config.js';
import type { EventLog } from '../events/event-log.js';
import type { Fleet } from '../fleet/fleet.module.js';
import type { Resources } from '../platform/resources.js';
import { PlacementService } from '../scheduling/placement.service.js';
import type { AuthStates } from './auth-states.js';
import { RefusedSessionEvents } from './refused-session-events.js';
import { SessionEffects } from './session-effects.js';
import { SessionEvents, type SessionEventPayloads } from './session-events.js';
import { SessionPlacement, type CommittedPlacement } from './session-placement.js';
import type { SessionRequests } from './session-requests.js';
import { SessionWatch } from './session-watch.js';
import { SessionService } from './session.service.js';
import type { MessageReports } from './message-report-batches.js';
import { WorkerReports } from './worker-reports.service.js';

/** How often every replica looks for sessions it can place, besides on every fleet change. */
export const PLACEMENT_INTERVAL_MS = 2000;
/** Placement looks at this many waiting sessions per round (oldest first). */
const PLACEMENT_BATCH = 500;

/** The sessions capability, built once by the composition root. */
export interface Sessions {
  /** The tenant's use cases. */
  readonly service: SessionService;
  /** What workers and the fleet report. */
  readonly reports: WorkerReports;
  readonly watch: SessionWatch;
  readonly placement: PlacementService<CommittedPlacement>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSessions(
  config: Config,
  resources: Resources,
  deps: {
    fleet: Pick<Fleet, 'router' | 'holds' | 'maintenance' | 'refusals'>;
    requests: SessionRequests;
    authStates: AuthStates;
    messages: MessageReports;
    audit: AuditService;
    /** The tenants' event log, and how session events are encoded for it. */
    eventLog: EventLog;
    eventPayloads: SessionEventPayloads;
  },
): Sessions {
  const log = resources.logger.child({ component: 'sessions' });
  const { router } = deps.fleet;
  const watch = new SessionWatch(resources);
  const events = new SessionEvents(deps.eventLog, deps.eventPayloads, log);
  // Placement and the reports call each other (an assignment not taken is a failed
  // attempt; a failed attempt asks for placement): each gets the other through a closure.
  const effects = new SessionEffects(router, () => placement.request(), log);
  const reports: WorkerReports = new WorkerReports(resources, {
    watch,
    effects,
    authStates: deps.authStates,
    messages: deps.messages,
    refused: new RefusedSessionEvents(router, deps.fleet.refusals, log, {
      clock: resources.clock,
      resendStopAfterMs: config.workerWarningIntervalMs,
    }),
    commands: router,
    holds: deps.fleet.holds,
    placement: { request: () => placement.request(), placePending: () => placement.placePending() },
    events,
  });
  const store = new SessionPlacement(resources, {
    maintenance: deps.fleet.maintenance,
    commands: router,
    watch,
    reportEnded: (workerId, event) => reports.onWorkerEvent(workerId, event),
    events,
  });
  const placement = new PlacementService<CommittedPlacement>(
    store,
    (placed) => store.deliver(placed),
    resources.scheduler,
    { intervalMs: PLACEMENT_INTERVAL_MS, batchSize: PLACEMENT_BATCH },
    resources.logger.child({ component: 'placement' }),
  );
  const service = new SessionService(
    resources,
    { quota: config.sessionQuota, defaultEngine: config.defaultEngine },
    { watch, effects, requests: deps.requests, placement, audit: deps.audit, events },
  );
  return {
    service,
    reports,
    watch,
    placement,
    async start() {
      await watch.start();
      placement.start();
    },
    async stop() {
      placement.stop();
      await watch.stop();
    },
  };
}
