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
  const fleet = compileFleet(view);
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
  const fleet = compileFleet(view);
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
function compileFleet(view: FleetView) {
  const workers = [...view.workers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const n = workers.length;
  const index = new Map<string, number>();
  const capacity = new Float64Array(n);
  const assigned = new Float64Array(n);
  const cpu = new Float64Array(n);
  const memory = new Float64Array(n);
  // The weighted CPU and memory scores: fixed for the whole batch.
  const resources = new Float64Array(n);
  const zoneNames: string[] = [];
  const zoneIndex = new Int32Array(n);
  const zones: string[] = [];
  for (let i = 0; i < n; i++) {
    const worker = workers[i] as FleetWorker;
    if (index.has(worker.id)) throw DomainError.invalidArgument('workers', `worker ${worker.id} appears twice`);
    index.set(worker.id, i);
    capacity[i] = worker.capacity;
    assigned[i] = worker.assignedSessions;
    cpu[i] = cpuHeadroomScore(worker.metrics);
    memory[i] = memoryHeadroomScore(worker.metrics);
    resources[i] = W.cpuHeadroom * (cpu[i] as number) + W.memoryHeadroom * (memory[i] as number);
    const zone = zoneOf(worker.labels);
    zoneNames.push(zone);
    let z = zones.indexOf(zone);
    if (z < 0) z = zones.push(zone) - 1;
    zoneIndex[i] = z;
  }

  // Per-request inputs, cached by their content: a batch has few distinct ones.
  const classCache = new Map<string, RequestClass>();
  const affinityCache = new Map<string, Float64Array>();
  // Scratch for the scan, refilled per placement: the tenant's sessions per worker, the zone half per zone.
  const onWorker = new Float64Array(n);
  const zoneSpread = new Float64Array(zones.length);

  function requestClass(engine: EngineKind, constraints: readonly LabelRequirement[]): RequestClass {
    const key = `${engine} ${JSON.stringify(constraints)}`;
    const cached = classCache.get(key);
    if (cached) return cached;
    const filtered = { status: 0, schedulability: 0, engine: 0, constraints: 0 };
    const candidates: number[] = [];
    const share = new Float64Array(n);
    const zoneShare = new Float64Array(zones.length);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const worker = workers[i] as FleetWorker;
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
    classCache.set(key, found);
    return found;
  }

  function affinityScores(affinities: readonly LabelAffinity[]): Float64Array {
    const key = JSON.stringify(affinities);
    let scores = affinityCache.get(key);
    if (!scores) {
      scores = new Float64Array(n);
      for (let i = 0; i < n; i++) scores[i] = affinityScore((workers[i] as FleetWorker).labels, affinities) ?? 0;
      affinityCache.set(key, scores);
    }
    return scores;
  }

  function tenantState(spread: TenantSpread | undefined): TenantState {
    const byWorker = new Map<number, number>();
    let total = 0;
    for (const [id, count] of spread?.byWorker ?? []) {
      total += count;
      const i = index.get(id);
      if (i !== undefined && count > 0) byWorker.set(i, count);
    }
    return { byWorker, byZone: new Map(spread?.byZone ?? []), total };
  }

  function place(request: PlacementRequest, tenant: TenantState): PlacementResult {
    validateRequest(request);
    if (view.maintenance) {
      return {
        placed: false,
        sessionId: request.sessionId,
        reason: 'MAINTENANCE',
        workersEvaluated: 0,
        filtered: { status: 0, schedulability: 0, engine: 0, constraints: 0, capacity: 0 },
        message: 'the platform is under maintenance: sessions are placed again when it ends',
      };
    }
    const { candidates, share, zoneShare, filtered } = requestClass(request.engine, request.constraints ?? []);
    const affinity =
      request.affinities && request.affinities.length > 0 ? affinityScores(request.affinities) : undefined;
    const sessions = tenant.total;
    for (const [i, count] of tenant.byWorker) onWorker[i] = count;
    for (let z = 0; z < zones.length; z++) {
      const inZone = tenant.byZone.get(zones[z] as string) ?? 0;
      zoneSpread[z] = 0.5 / (1 + Math.max(0, inZone - sessions * (zoneShare[z] as number)));
    }

    const { best, bestSum, full } = scanCandidates(
      candidates,
      capacity,
      assigned,
      onWorker,
      share,
      sessions,
      zoneSpread,
      zoneIndex,
      resources,
      affinity,
    );
    for (const i of tenant.byWorker.keys()) onWorker[i] = 0;

    if (best < 0) return noPlacement(request, n, { ...filtered, capacity: full });
    const worker = workers[best] as FleetWorker;
    return {
      placed: true,
      sessionId: request.sessionId,
      workerId: worker.id,
      workerName: worker.name,
      score: {
        freeSlots: freeSlotsScore(capacity[best] as number, assigned[best] as number),
        cpuHeadroom: cpu[best] as number,
        memoryHeadroom: memory[best] as number,
        tenantSpread: tenantSpreadScore(
          tenant.byWorker.get(best) ?? 0,
          sessions * (share[best] as number),
          tenant.byZone.get(zoneNames[best] as string) ?? 0,
          sessions * (zoneShare[zoneIndex[best] as number] as number),
        ),
        affinity: affinity ? (affinity[best] as number) : null,
        total: bestSum / (affinity ? SUM_WITH_AFFINITY : SUM_WITHOUT_AFFINITY),
      },
      feasibleWorkers: candidates.length - full,
    };
  }

  /** Counts a placement, so the next request sees it. */
  function commit(workerId: string, tenant: TenantState): void {
    const i = index.get(workerId);
    if (i === undefined) throw new DomainError('INTERNAL', `worker ${workerId} is not in the view`);
    assigned[i] = (assigned[i] as number) + 1;
    tenant.byWorker.set(i, (tenant.byWorker.get(i) ?? 0) + 1);
    tenant.total++;
    const zone = zoneNames[i] as string;
    tenant.byZone.set(zone, (tenant.byZone.get(zone) ?? 0) + 1);
  }

  function snapshot(): FleetWorker[] {
    return workers.map((worker, i) => ({ ...worker, assignedSessions: assigned[i] as number }));
  }

  return { place, commit, tenantState, snapshot };
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
