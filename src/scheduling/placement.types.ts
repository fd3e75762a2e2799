import type { LabelRequirement } from './label-selector.js';

/*
 * What the scheduler reads and decides. The fleet's status, schedulability
 * and engine names are repeated here as the scheduler needs them, so the
 * scheduler depends on nothing outside src/scheduling; the fleet's view
 * (src/fleet/fleet-view.ts) is checked against these types by the compiler.
 */

/** The engines a session can run on. */
export type EngineKind = 'SANDBOX' | 'BAILEYS';
/** A worker's liveness; only ONLINE workers take sessions. */
export type WorkerStatus = 'ONLINE' | 'OFFLINE' | 'FAILED' | 'REMOVED';
/** Whether an operator lets a worker take new work; only ACTIVE ones do. */
export type Schedulability = 'ACTIVE' | 'CORDONED' | 'DRAINING';

/** The readings of a worker's last heartbeat that the resource scores use. */
export interface WorkerLoad {
  /** Process CPU in percent of one core: the agent's sessions share one event loop. */
  cpuPercent: number;
  freeMemoryBytes: number;
  totalMemoryBytes: number;
}

/** A worker as the scheduler sees it: a snapshot the caller builds from the fleet and the session assignments. */
export interface FleetWorker {
  id: string;
  name: string;
  status: WorkerStatus;
  schedulability: Schedulability;
  /** The most sessions it accepts (from its Hello). */
  capacity: number;
  supportedEngines: readonly EngineKind[];
  labels: Readonly<Record<string, string>>;
  /** Sessions assigned to it now (STARTING, SCAN_QR or WORKING). */
  assignedSessions: number;
  /** Null until it reports one: such a worker gets the neutral 0.5 for CPU and memory. */
  metrics: WorkerLoad | null;
}

/** Everything a decision reads, immutable, so decisions can be replayed and tested. */
export interface FleetView {
  workers: readonly FleetWorker[];
  /** Platform maintenance: nothing is placed while it is on. */
  maintenance: boolean;
}

/** A soft preference, as Nomad's affinities: workers matching it score higher (lower for a negative weight). */
export interface LabelAffinity {
  requirement: LabelRequirement;
  /** In [-100, 100], not 0; only the ratios between a request's weights matter. */
  weight: number;
}

/** One session to place. */
export interface PlacementRequest {
  sessionId: string;
  tenantId: string;
  engine: EngineKind;
  /** Hard: only workers matching all of them. */
  constraints?: readonly LabelRequirement[];
  /** Soft: preferred (or, with negative weights, avoided) labels. */
  affinities?: readonly LabelAffinity[];
}

/**
 * Where a tenant's sessions run now, so its next one goes elsewhere: counts
 * by worker id and by zone (see zoneOf). Its total is the sum of byWorker.
 */
export interface TenantSpread {
  byWorker: ReadonlyMap<string, number>;
  byZone: ReadonlyMap<string, number>;
}

/** A feasibility check, named after what it rejects. */
export type PlacementFilter = 'status' | 'schedulability' | 'engine' | 'constraints' | 'capacity';

/** The filters in the order they run. */
export const PLACEMENT_FILTERS: readonly PlacementFilter[] = [
  'status',
  'schedulability',
  'engine',
  'constraints',
  'capacity',
];

/** Every score of the chosen worker, each in [0, 1], and the total: for logs and "why there?". */
export interface ScoreBreakdown {
  freeSlots: number;
  cpuHeadroom: number;
  memoryHeadroom: number;
  tenantSpread: number;
  /** Null when the request states no affinity (it then does not count). */
  affinity: number | null;
  total: number;
}

/** A decision to run the session on a worker. */
export interface Placement {
  placed: true;
  sessionId: string;
  workerId: string;
  workerName: string;
  score: ScoreBreakdown;
  /** How many workers could have taken it. */
  feasibleWorkers: number;
}

/** Why nothing fits, with counts per filter (Nomad's "constraint filtered N nodes"), and a message for the tenant. */
export interface NoPlacement {
  placed: false;
  sessionId: string;
  reason: 'MAINTENANCE' | 'NO_WORKERS' | 'ALL_FILTERED';
  workersEvaluated: number;
  filtered: Record<PlacementFilter, number>;
  message: string;
}

/** What the scheduler decided for one request: callers switch on `placed`. */
export type PlacementResult = Placement | NoPlacement;

/** The outcome of placing many requests in order, each seeing the ones before it. */
export interface BatchPlan {
  results: PlacementResult[];
  /** The view's workers (sorted by id) with the batch's placements added to their counts. */
  workers: FleetWorker[];
}
