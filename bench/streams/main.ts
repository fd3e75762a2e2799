import { join } from 'node:path';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createBackingServices } from '../harness/backing-services.js';
import { seedControlPlane } from '../harness/control-plane-run.js';
import { loginAdmin } from '../harness/fleet-watch.js';
import { runBench, type BenchOutcome, type BenchRun } from '../harness/run.js';
import { benchOptions, type BenchOptions } from './bench.options.js';
import { formatReport } from './report.js';
import { HEARTBEAT_INTERVAL_MS, measure } from './server-measurement.js';

/**
 * bench/streams: what one control-plane process pays to hold agent streams.
 *
 * N simulated agents (one process, one HTTP/2 connection each) hold a
 * WorkerService.Connect stream and heartbeat every second, first against the
 * real control plane (PostgreSQL and Redis, or embedded with --embedded),
 * then against the floor: a bare connect-node server that only acknowledges.
 * Each server runs alone in its own process so /proc gives its RSS and CPU;
 * the load generator measures heartbeat round trips. Any stream error,
 * lost heartbeat or worker not ONLINE fails the run instead of being
 * averaged into a figure.
 */

const LEASE_TTL_MS = 10_000;

async function measureStreams(options: BenchOptions, run: BenchRun): Promise<BenchOutcome> {
  const namePrefix = `bench-${run.runId}`;
  const backing = await prepareBacking(options, run);
  run.progress(`control plane backing: ${backing.description}`);
  const seed = seedControlPlane(run.runId);
  const timing = { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS), LEASE_TTL_MS: String(LEASE_TTL_MS) };
  const ours = await measure(
    {
      label: 'control plane',
      entry: new URL('../harness/control-plane.server.ts', import.meta.url),
      env: { ...process.env, ...seed.env, ...backing.env, ...timing },
      joinToken: seed.joinToken,
      countOnline: (httpUrl) => countOnlineWorkers(httpUrl, seed.admin, namePrefix),
    },
    options,
    run,
    namePrefix,
  );
  const floor = await measure(
    {
      label: 'floor',
      entry: new URL('./floor.server.ts', import.meta.url),
      env: { ...process.env, ...timing },
      joinToken: seed.joinToken,
    },
    options,
    run,
    namePrefix,
  );
  return {
    report: {
      title: `Streams bench: ${options.agents} agents, ${options.durationS} s steady window, heartbeat every ${HEARTBEAT_INTERVAL_MS} ms`,
      context: [`control plane on ${backing.description}`],
      body: `\n${formatReport(ours, floor)}\n`,
    },
    problems: [...ours.problems, ...floor.problems],
  };
}

/** PostgreSQL and Redis (or their embedded stand-ins) for the control plane; dropped when the run ends. */
async function prepareBacking(
  options: BenchOptions,
  run: BenchRun,
): Promise<{ description: string; env: Record<string, string> }> {
  if (options.embedded) {
    // Empty strings read as "unset" in src/config.ts: PGlite and the in-process store.
    return {
      description: 'embedded PGlite + in-process coordination store',
      env: { DATABASE_URL: '', REDIS_URL: '', DATA_DIR: join(run.workDir, 'data') },
    };
  }
  const backing = await createBackingServices({ ...options, runId: run.runId, progress: run.progress });
  run.defer(() => backing.dispose());
  return backing;
}

/**
 * Counts the run's workers the control plane reports ONLINE, as an operator
 * would see them: log in as the platform admin, then page through
 * AdminService/ListWorkers over Connect JSON.
 */
async function countOnlineWorkers(
  httpUrl: string,
  credentials: { email: string; password: string },
  namePrefix: string,
): Promise<number> {
  const { admin, headers } = await loginAdmin(httpUrl, credentials, true);
  let online = 0;
  let pageToken = '';
  do {
    const page = await admin.listWorkers(
      { pageSize: 1000, status: WorkerStatus.ONLINE, pageToken },
      { timeoutMs: 30_000, headers },
    );
    online += page.workers.filter(
      (w) => w.status === WorkerStatus.ONLINE && w.name.startsWith(`${namePrefix}-`),
    ).length;
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return online;
}

await runBench({
  name: 'bench:streams',
  options: benchOptions,
  describe: (o) => `${o.agents} agents, ${o.warmupS} s warm-up, ${o.durationS} s window`,
  services: (o) => (o.embedded ? {} : { postgresUrl: o.postgresUrl, redisUrl: o.redisUrl }),
  workDir: true,
  profile: (o) => o.profile,
  run: measureStreams,
});
