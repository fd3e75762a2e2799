import { DomainError } from '../../lib/errors.js';
import { formatLabelSelector, matchesLabels, type LabelRequirement } from './label-selector.js';
import {
  type BatchPlan,
  type EngineKind,
  type FleetView,
  type FleetWorker,
  type LabelAffinity,
  type NoPlacement,
  type PlacementFilter,
  type PlacementRequest,
  type PlacementResult,
  type ScoreBreakdown,
  type TenantSpread,
} from './placement.types.js';
import {
  affinityScore,
  cpuHeadroomScore,
  freeSlotsScore,
  memoryHeadroomScore,
  SCORE_WEIGHTS,
  tenantSpreadScore,
  zoneOf,
} from './scores.js';

// The scheduler's whole vocabulary, so its callers import one module.
export * from './placement.types.js';
export * from './scores.js';
export { formatLabelSelector, matchesLabels, parseLabelSelector, type LabelRequirement } from './label-selector.js';

/*
 * The placement scheduler, after Nomad's: it reads an immutable view of the
 * fleet and returns a decision; the caller commits it (and checks, when it
 * does, that the view it decided on still holds). Pure and deterministic:
 * the same view and request always give the same worker.
 *
 * Feasibility, in this order (a worker is counted under the first filter
 * that rejects it, which is what a "nothing fits" message reports): ONLINE,
 * schedulability ACTIVE, runs the session's engine, matches the request's
 * label constraints, has a free slot. Platform maintenance places nothing.
 *
 * Ranking: each score is in [0, 1]; the total is their weighted mean
 * (SCORE_WEIGHTS); the highest total wins, ties go to the smallest worker id.
 */

/** Places one session (pure). Compiles the view each call: to place many, use planBatch. */
export function placeSession(view: FleetView, request: PlacementRequest, tenant?: TenantSpread): PlacementResult {
  const fleet = new CompiledFleet(view);
  return fleet.place(request, fleet.tenantState(tenant));
}

/**
 * Places requests in order against one compiled copy of the view, counting
 * each placement before the next request (the tenant's spread too), so it
 * gives what placeSession would give one request at a time against a view
 * updated after each, only faster: the fleet is compiled once into flat
 * arrays, so each placement is one tight pass over the workers that could
 * take it (figures in docs/benchmarks.md, "bench/schedule").
 */
export function planBatch(
  view: FleetView,
  requests: readonly PlacementRequest[],
  tenants: ReadonlyMap<string, TenantSpread> = new Map(),
): BatchPlan {
  const fleet = new CompiledFleet(view);
  const tenantStates = new Map<string, TenantState>();
  const results = requests.map((request) => {
    let tenant = tenantStates.get(request.tenantId);
    if (!tenant) {
      tenant = fleet.tenantState(tenants.get(request.tenantId));
      tenantStates.set(request.tenantId, tenant);
    }
    const result = fleet.place(request, tenant);
    if (result.placed) fleet.commit(result.workerId, tenant);
    return result;
  });
  return { results, workers: fleet.snapshot() };
}

/** A tenant's spread keyed by worker index, as the compiled fleet counts it. */
interface TenantState {
  byWorker: Map<number, number>;
  byZone: Map<string, number>;
  total: number;
}

/** What one kind of request (engine and constraints) can use, worked out once per kind. */
interface RequestClass {
  /** Workers passing every filter but capacity, in id order: the only ones a placement scans. */
  candidates: Int32Array;
  /** How many workers the other filters rejected (the capacity count is per placement). */
  filtered: Omit<Record<PlacementFilter, number>, 'capacity'>;
  /** Each worker's share of the candidates' capacity (full ones included), for fair shares. */
  share: Float64Array;
  /** The same per zone. */
  zoneShare: Float64Array;
}

const ENGINE_BIT: Record<EngineKind, number> = { SANDBOX: 1, BAILEYS: 2 };

const W = SCORE_WEIGHTS;
const SUM_WITHOUT_AFFINITY = W.freeSlots + W.cpuHeadroom + W.memoryHeadroom + W.tenantSpread;
const SUM_WITH_AFFINITY = SUM_WITHOUT_AFFINITY + W.affinity;

/**
 * The view flattened into arrays indexed by worker, sorted by id so that
 * index order is the tie-break. What does not change between placements
 * (filters other than capacity, fair-share denominators, resource scores,
 * affinity matches) is worked out once per kind of request, so a placement
 * is one pass over the candidates doing a few array reads and
 * multiplications each.
 */
class CompiledFleet {
  private readonly workers: FleetWorker[];
  private readonly n: number;
  private readonly index = new Map<string, number>();
  private readonly capacity: Float64Array;
  private readonly assigned: Float64Array;
  private readonly cpu: Float64Array;
  private readonly memory: Float64Array;
  /** The weighted CPU and memory scores: fixed for the whole batch. */
  private readonly resources: Float64Array;
  private readonly zoneNames: string[] = [];
  private readonly zoneIndex: Int32Array;
  private readonly zones: string[] = [];
  /** Per-request inputs, cached by their content: a batch has few distinct ones. */
  private readonly classCache = new Map<string, RequestClass>();
  private readonly affinityCache = new Map<string, Float64Array>();
  /** Scratch for the scan, refilled per placement: the tenant's sessions per worker. */
  private readonly onWorker: Float64Array;
  /** Scratch: the zone half of the spread score per zone. */
  private readonly zoneSpread: Float64Array;

  constructor(private readonly view: FleetView) {
    this.workers = [...view.workers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const n = (this.n = this.workers.length);
    this.capacity = new Float64Array(n);
    this.assigned = new Float64Array(n);
    this.cpu = new Float64Array(n);
    this.memory = new Float64Array(n);
    this.resources = new Float64Array(n);
    this.zoneIndex = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const worker = this.workers[i] as FleetWorker;
      if (this.index.has(worker.id)) throw DomainError.invalidArgument('workers', `worker ${worker.id} appears twice`);
      this.index.set(worker.id, i);
      this.capacity[i] = worker.capacity;
      this.assigned[i] = worker.assignedSessions;
      this.cpu[i] = cpuHeadroomScore(worker.metrics);
      this.memory[i] = memoryHeadroomScore(worker.metrics);
      this.resources[i] = W.cpuHeadroom * (this.cpu[i] as number) + W.memoryHeadroom * (this.memory[i] as number);
      const zone = zoneOf(worker.labels);
      this.zoneNames.push(zone);
      let z = this.zones.indexOf(zone);
      if (z < 0) z = this.zones.push(zone) - 1;
      this.zoneIndex[i] = z;
    }
    this.onWorker = new Float64Array(n);
    this.zoneSpread = new Float64Array(this.zones.length);
  }

  /** Where a tenant's sessions run now, keyed by worker index. */
  tenantState(spread: TenantSpread | undefined): TenantState {
    const byWorker = new Map<number, number>();
    let total = 0;
    for (const [id, count] of spread?.byWorker ?? []) {
      total += count;
      const i = this.index.get(id);
      if (i !== undefined && count > 0) byWorker.set(i, count);
    }
    return { byWorker, byZone: new Map(spread?.byZone ?? []), total };
  }

  /** The best worker for one request, or why none fits. */
  place(request: PlacementRequest, tenant: TenantState): PlacementResult {
    validateRequest(request);
    if (this.view.maintenance) return maintenance(request);
    const { candidates, share, zoneShare, filtered } = this.requestClass(request.engine, request.constraints ?? []);
    const affinity =
      request.affinities && request.affinities.length > 0 ? this.affinityScores(request.affinities) : undefined;
    const sessions = tenant.total;
    const { onWorker, zoneSpread, zones } = this;
    for (const [i, count] of tenant.byWorker) onWorker[i] = count;
    for (let z = 0; z < zones.length; z++) {
      const inZone = tenant.byZone.get(zones[z] as string) ?? 0;
      zoneSpread[z] = 0.5 / (1 + Math.max(0, inZone - sessions * (zoneShare[z] as number)));
    }
    const { best, bestSum, full } = scanCandidates(
      candidates,
      this.capacity,
      this.assigned,
      onWorker,
      share,
      sessions,
      zoneSpread,
      this.zoneIndex,
      this.resources,
      affinity,
    );
    for (const i of tenant.byWorker.keys()) onWorker[i] = 0;
    if (best < 0) return noPlacement(request, this.n, { ...filtered, capacity: full });
    const worker = this.workers[best] as FleetWorker;
    return {
      placed: true,
      sessionId: request.sessionId,
      workerId: worker.id,
      workerName: worker.name,
      score: this.breakdown(best, bestSum, tenant, share, zoneShare, affinity),
      feasibleWorkers: candidates.length - full,
    };
  }

  /** Counts a placement, so the next request sees it. */
  commit(workerId: string, tenant: TenantState): void {
    const i = this.index.get(workerId);
    if (i === undefined) throw new DomainError('INTERNAL', `worker ${workerId} is not in the view`);
    this.assigned[i] = (this.assigned[i] as number) + 1;
    tenant.byWorker.set(i, (tenant.byWorker.get(i) ?? 0) + 1);
    tenant.total++;
    const zone = this.zoneNames[i] as string;
    tenant.byZone.set(zone, (tenant.byZone.get(zone) ?? 0) + 1);
  }

  snapshot(): FleetWorker[] {
    return this.workers.map((worker, i) => ({ ...worker, assignedSessions: this.assigned[i] as number }));
  }

  /** Every score of the chosen worker, for logs and "why there?". */
  private breakdown(
    best: number,
    bestSum: number,
    tenant: TenantState,
    share: Float64Array,
    zoneShare: Float64Array,
    affinity: Float64Array | undefined,
  ): ScoreBreakdown {
    const sessions = tenant.total;
    return {
      freeSlots: freeSlotsScore(this.capacity[best] as number, this.assigned[best] as number),
      cpuHeadroom: this.cpu[best] as number,
      memoryHeadroom: this.memory[best] as number,
      tenantSpread: tenantSpreadScore(
        tenant.byWorker.get(best) ?? 0,
        sessions * (share[best] as number),
        tenant.byZone.get(this.zoneNames[best] as string) ?? 0,
        sessions * (zoneShare[this.zoneIndex[best] as number] as number),
      ),
      affinity: affinity ? (affinity[best] as number) : null,
      total: bestSum / (affinity ? SUM_WITH_AFFINITY : SUM_WITHOUT_AFFINITY),
    };
  }

  private requestClass(engine: EngineKind, constraints: readonly LabelRequirement[]): RequestClass {
    const key = `${engine} ${JSON.stringify(constraints)}`;
    const cached = this.classCache.get(key);
    if (cached) return cached;
    const { n, zones, zoneIndex } = this;
    const filtered = { status: 0, schedulability: 0, engine: 0, constraints: 0 };
    const candidates: number[] = [];
    const share = new Float64Array(n);
    const zoneShare = new Float64Array(zones.length);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const worker = this.workers[i] as FleetWorker;
      if (worker.status !== 'ONLINE') filtered.status++;
      else if (worker.schedulability !== 'ACTIVE') filtered.schedulability++;
      else if (!worker.supportedEngines.includes(engine)) filtered.engine++;
      else if (!matchesLabels(worker.labels, constraints)) filtered.constraints++;
      else {
        candidates.push(i);
        // Full workers count too: their capacity is where even load puts the tenant's sessions.
        const cap = Math.max(0, worker.capacity);
        share[i] = cap;
        zoneShare[zoneIndex[i] as number] = (zoneShare[zoneIndex[i] as number] as number) + cap;
        total += cap;
      }
    }
    if (total > 0) {
      for (let i = 0; i < n; i++) share[i] = (share[i] as number) / total;
      for (let z = 0; z < zones.length; z++) zoneShare[z] = (zoneShare[z] as number) / total;
    }
    const found: RequestClass = { candidates: Int32Array.from(candidates), filtered, share, zoneShare };
    this.classCache.set(key, found);
    return found;
  }

  private affinityScores(affinities: readonly LabelAffinity[]): Float64Array {
    const key = JSON.stringify(affinities);
    let scores = this.affinityCache.get(key);
    if (!scores) {
      scores = new Float64Array(this.n);
      for (let i = 0; i < this.n; i++) {
        scores[i] = affinityScore((this.workers[i] as FleetWorker).labels, affinities) ?? 0;
      }
      this.affinityCache.set(key, scores);
    }
    return scores;
  }
}

/** Nothing is placed while the platform is under maintenance. */
function maintenance(request: PlacementRequest): PlacementResult {
  return {
    placed: false,
    sessionId: request.sessionId,
    reason: 'MAINTENANCE',
    workersEvaluated: 0,
    filtered: { status: 0, schedulability: 0, engine: 0, constraints: 0, capacity: 0 },
    message: 'the platform is under maintenance: sessions are placed again when it ends',
  };
}

/** What one pass over the candidates found. */
interface Scan {
  best: number;
  bestSum: number;
  full: number;
}

/**
 * The hot loop of the scheduler. At module level, not a closure per
 * compiled fleet, so every batch runs the same optimised code: as a closure
 * it took about a quarter more CPU from the second batch in a process on.
 * It compares the weighted sum, not yet divided by the sum of the weights
 * (the same for every candidate).
 */
function scanCandidates(
  candidates: Int32Array,
  capacity: Float64Array,
  assigned: Float64Array,
  onWorker: Float64Array,
  share: Float64Array,
  sessions: number,
  zoneSpread: Float64Array,
  zoneIndex: Int32Array,
  resources: Float64Array,
  affinity: Float64Array | undefined,
): Scan {
  let best = -1;
  let bestSum = -Infinity;
  let full = 0;
  for (let k = 0; k < candidates.length; k++) {
    const i = candidates[k] as number;
    const cap = capacity[i] as number;
    const used = assigned[i] as number;
    if (used >= cap) {
      full++;
      continue;
    }
    const free = 1 - (used + 1) / cap;
    const above = (onWorker[i] as number) - sessions * (share[i] as number);
    // Most workers hold none of this tenant's sessions: skip the division for them (0.5 / 1 is 0.5).
    const spread = (above > 0 ? 0.5 / (1 + above) : 0.5) + (zoneSpread[zoneIndex[i] as number] as number);
    let sum = W.freeSlots * (free > 0 ? free : 0) + (resources[i] as number) + W.tenantSpread * spread;
    if (affinity) sum += W.affinity * (affinity[i] as number);
    // Strictly greater: on a tie the earlier index (smaller id) keeps it.
    if (sum > bestSum) {
      bestSum = sum;
      best = i;
    }
  }
  return { best, bestSum, full };
}

function validateRequest(request: PlacementRequest): void {
  if (!Object.hasOwn(ENGINE_BIT, request.engine)) {
    throw DomainError.invalidArgument('engine', `unknown engine ${JSON.stringify(request.engine)}`);
  }
  for (const { weight } of request.affinities ?? []) {
    if (!Number.isFinite(weight) || weight === 0 || Math.abs(weight) > 100) {
      throw DomainError.invalidArgument('affinities.weight', 'must be in [-100, 100] and not 0');
    }
  }
}

function noPlacement(
  request: PlacementRequest,
  evaluated: number,
  filtered: Record<PlacementFilter, number>,
): NoPlacement {
  if (evaluated === 0) {
    return {
      placed: false,
      sessionId: request.sessionId,
      reason: 'NO_WORKERS',
      workersEvaluated: 0,
      filtered,
      message: 'no workers are registered: a session can run once a worker joins',
    };
  }
  const parts: string[] = [];
  const add = (count: number, what: string) => {
    if (count > 0) parts.push(`${count} ${what}`);
  };
  add(filtered.status, 'not online');
  add(filtered.schedulability, 'cordoned or draining');
  add(filtered.engine, `without the ${request.engine} engine`);
  add(filtered.constraints, `not matching ${formatLabelSelector(request.constraints ?? [])}`);
  add(filtered.capacity, 'full');
  return {
    placed: false,
    sessionId: request.sessionId,
    reason: 'ALL_FILTERED',
    workersEvaluated: evaluated,
    filtered,
    message: `no worker can run this session now: of ${evaluated} ${evaluated === 1 ? 'worker' : 'workers'}, ${parts.join(', ')}`,
  };
}
