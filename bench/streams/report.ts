import { alignedTable, floorHeader, ratio } from '../harness/report.js';
import type { WindowReport } from './ipc.js';

/** Everything measured against one server in one run; printed side by side with the floor's. */
export interface ServerFigures {
  label: string;
  agents: number;
  connectSeconds: number;
  windowSeconds: number;
  idleRssBytes: number;
  /** Median of the once-a-second samples over the window: one GC-timing outlier cannot move it. */
  loadedRssBytes: number;
  peakRssBytes: number;
  rssPerStreamBytes: number;
  /** Percent of one core over the window. */
  cpuPercent: number;
  cpuMicrosPerHeartbeat: number;
  heartbeatsPerSecond: number;
  window: WindowReport;
  clientCpuPercent: number;
  /** PostgreSQL and Redis processes on this machine, in percent of one core. */
  backingCpuPercent: number;
  /** Every process on the machine, kernel included, in percent of one core (200 is a full 2-vCPU machine). */
  machineCpuPercent: number;
  /** Workers the server reports ONLINE during the window (control plane only). */
  onlineWorkers?: number;
  /** Workers still ONLINE after every agent hung up (control plane only): should be 0. */
  onlineAfterStop?: number;
  /** What this server got wrong during the run; any entry fails the run after the figures print. */
  problems: string[];
}

type Row = { name: string; value: (f: ServerFigures) => number | undefined; digits: number; ratio?: boolean };

const MiB = 1024 * 1024;

const ROWS: Row[] = [
  { name: 'streams (agents connected)', value: (f) => f.agents, digits: 0 },
  { name: 'connect ramp (s)', value: (f) => f.connectSeconds, digits: 1 },
  { name: 'RSS idle (MiB)', value: (f) => f.idleRssBytes / MiB, digits: 1 },
  { name: 'RSS with streams, median (MiB)', value: (f) => f.loadedRssBytes / MiB, digits: 1 },
  { name: 'RSS with streams, peak (MiB)', value: (f) => f.peakRssBytes / MiB, digits: 1 },
  { name: 'RSS per stream (KiB)', value: (f) => f.rssPerStreamBytes / 1024, digits: 1, ratio: true },
  { name: 'CPU (% of one core)', value: (f) => f.cpuPercent, digits: 1, ratio: true },
  { name: 'CPU per heartbeat (µs)', value: (f) => f.cpuMicrosPerHeartbeat, digits: 0, ratio: true },
  { name: 'heartbeat round trip p50 (ms)', value: (f) => f.window.latency.p50Ms, digits: 2, ratio: true },
  { name: 'heartbeat round trip p99 (ms)', value: (f) => f.window.latency.p99Ms, digits: 2, ratio: true },
  { name: 'heartbeat round trip max (ms)', value: (f) => f.window.latency.maxMs, digits: 1 },
  { name: 'heartbeats acked / s', value: (f) => f.heartbeatsPerSecond, digits: 0 },
  { name: 'heartbeats lost', value: (f) => f.window.heartbeatsLost, digits: 0 },
  { name: 'load generator CPU (% of one core)', value: (f) => f.clientCpuPercent, digits: 1 },
  { name: 'load generator loop delay p99 (ms)', value: (f) => f.window.clientLoopDelayP99Ms, digits: 1 },
  { name: 'PostgreSQL + Redis CPU (% of one core)', value: (f) => f.backingCpuPercent, digits: 1 },
  { name: 'whole machine CPU (% of one core)', value: (f) => f.machineCpuPercent, digits: 1 },
  {
    // Whatever else ran on the machine: large values mean the run was disturbed.
    name: '  of which other processes',
    value: (f) => f.machineCpuPercent - f.cpuPercent - f.clientCpuPercent - f.backingCpuPercent,
    digits: 1,
  },
  { name: 'workers ONLINE (ListWorkers)', value: (f) => f.onlineWorkers, digits: 0 },
  { name: 'workers ONLINE after agents left', value: (f) => f.onlineAfterStop, digits: 0 },
];

/** A plain-text table: one row per figure, ours next to the floor's and their ratio. */
export function formatReport(ours: ServerFigures, floor: ServerFigures): string {
  return alignedTable(
    floorHeader(ours.label, floor.label),
    ROWS.map((row) => {
      const a = row.value(ours);
      const b = row.value(floor);
      return [row.name, format(a, row.digits), format(b, row.digits), row.ratio ? ratio(a, b, { none: '' }) : ''];
    }),
  );
}

function format(value: number | undefined, digits: number): string {
  if (value === undefined) return 'n/a';
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
