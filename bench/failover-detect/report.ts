import { percentile } from '../harness/measure.js';
import { fixed, markdownTable } from '../harness/report.js';
import type { BenchReport } from '../harness/run.js';

/** The fault injected into an agent, as the report names it. */
export type Fault = 'SIGKILL' | 'SIGSTOP';

/** One signalled agent and when the watcher saw the control plane react. */
export interface Detection {
  name: string;
  fault: Fault;
  /** Seconds from the signal to the first OFFLINE event received, if any arrived within the cap. */
  offlineS: number | undefined;
  /** Seconds from the signal to the FAILED event received, if it arrived within the cap. */
  failedS: number | undefined;
  /** Seconds from the signal to the FAILED event's own occurred_at stamp (when the control plane decided). */
  failedDecidedS: number | undefined;
  offlineDecidedS: number | undefined;
}

/** One line of the table: a fault, the event that detects it, and the target its p99 must meet. */
export interface Row {
  label: string;
  fault: Fault;
  event: 'OFFLINE' | 'FAILED';
  /** Undefined when the row is informational. */
  targetS: number | undefined;
  targetNote: string;
}

/** What the run saw besides the detections; each entry goes into the summary under the table. */
export interface RunFacts {
  agents: number;
  /** How the signals were sent, e.g. "10 SIGKILL + 10 SIGSTOP, in pairs spread evenly over 1000 ms". */
  signals: string;
  capS: number;
  timing: string;
  /** Whole machine over the observation window, in percent of one core. */
  machineCpuPercent: number;
  /** The control plane, the agents never signalled and the bench itself, in percent of one core. */
  runCpuPercent: number;
  /** The bench's own event-loop delay over the window: its timestamps are late by up to this much. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  survivors: number;
  survivorsOnlineWatch: number;
  survivorsOnlineList: number;
  survivorsRunning: number;
  /** OFFLINE or FAILED events for agents that were never signalled. */
  falseEvents: string[];
  victimsFailedList: number;
}

/** A row's p99 against its target; undefined when nothing was measured or the row has no target. */
export function verdict(row: Row, detections: readonly Detection[]): 'met' | 'MISSED' | undefined {
  const values = times(row, detections, 'received');
  if (row.targetS === undefined || values.length === 0) return undefined;
  return percentile(values, 0.99) < row.targetS ? 'met' : 'MISSED';
}

function times(row: Row, detections: readonly Detection[], clock: 'received' | 'decided'): number[] {
  return detections
    .filter((d) => d.fault === row.fault)
    .map((d) =>
      row.event === 'FAILED'
        ? clock === 'received'
          ? d.failedS
          : d.failedDecidedS
        : clock === 'received'
          ? d.offlineS
          : d.offlineDecidedS,
    )
    .filter((s): s is number => s !== undefined)
    .sort((a, b) => a - b);
}

const seconds = (value: number) => fixed(value, 3);

export function formatReport(rows: readonly Row[], detections: readonly Detection[], facts: RunFacts): BenchReport {
  const table = markdownTable(
    [
      'signal -> event seen on WatchWorkers',
      'detected',
      'p50 (s)',
      'p99 (s)',
      'max (s)',
      'target',
      'verdict',
      'occurred_at p50 / max (s)',
    ],
    'lrrrrllr',
    rows.map((row) => {
      const received = times(row, detections, 'received');
      const decided = times(row, detections, 'decided');
      const signalled = detections.filter((d) => d.fault === row.fault).length;
      return [
        row.label,
        `${received.length}/${signalled}`,
        seconds(percentile(received, 0.5)),
        seconds(percentile(received, 0.99)),
        seconds(received.at(-1) ?? NaN),
        row.targetS === undefined ? row.targetNote : `p99 < ${row.targetS.toFixed(1)} s (${row.targetNote})`,
        verdict(row, detections) ?? '-',
        `${seconds(percentile(decided, 0.5))} / ${seconds(decided.at(-1) ?? NaN)}`,
      ];
    }),
  );
  const perAgent = [...detections]
    .sort((a, b) => a.fault.localeCompare(b.fault) || a.name.localeCompare(b.name))
    .map(
      (d) =>
        `  ${d.fault} ${d.name}: first OFFLINE ${d.offlineS === undefined ? 'none' : `${seconds(d.offlineS)} s`}, ` +
        `FAILED ${d.failedS === undefined ? 'NOT SEEN' : `${seconds(d.failedS)} s`}`,
    );
  const victims = detections.length;
  const detected = detections.filter((d) => d.failedS !== undefined).length;
  const body = [
    '',
    ...table,
    '',
    `FAILED seen within ${facts.capS} s: ${detected} of ${victims} signalled agents`,
    `never signalled: ${facts.survivorsOnlineWatch} of ${facts.survivors} ONLINE on WatchWorkers at the end of the ${facts.capS} s window, ` +
      `${facts.survivorsOnlineList} ONLINE on ListWorkers, ${facts.survivorsRunning} processes running, ` +
      `${facts.falseEvents.length} OFFLINE/FAILED events (false failures)`,
    ...facts.falseEvents.map((event) => `  false: ${event}`),
    `ListWorkers shows ${facts.victimsFailedList} of ${victims} signalled agents FAILED`,
    `during the window: whole machine ${facts.machineCpuPercent.toFixed(0)}% of one core, ` +
      `of which this run's control plane, agents and bench ${facts.runCpuPercent.toFixed(0)}%; ` +
      `bench event-loop delay p99 ${facts.loopDelayP99Ms.toFixed(1)} ms, max ${facts.loopDelayMaxMs.toFixed(1)} ms`,
    '',
    'per agent (seconds after its signal, as received):',
    ...perAgent,
    '',
  ].join('\n');
  return {
    title: `bench/failover-detect: ${facts.agents} real agents; ${facts.signals}`,
    context: [`control plane: ${facts.timing}`],
    body,
  };
}
