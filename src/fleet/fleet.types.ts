import type { LabelRequirement } from './worker.state.js';
import type { FailureGuardPolicy } from './failure-guard.js';
import type { EngineKind, WorkerMetrics, WorkerStatus } from './worker.entity.js';

/** What an agent says about itself when it opens a stream (protocol-free). */
export interface AgentHello {
  workerName: string;
  agentVersion: string;
  capacity: number;
  supportedEngines: EngineKind[];
  labels: Record<string, string>;
  instanceId: string;
  /** The id a previous Welcome gave; empty on first contact. */
  workerId: string;
  /** Sessions the agent still runs, with their assignment epochs (reconciled by the sessions capability). */
  heldSessions: { sessionId: string; epoch: bigint }[];
  /** How the agent proves it may join; absent means refused. */
  credential: { kind: 'join-token' | 'worker-credential'; token: string } | undefined;
}

/** One heartbeat from an agent (protocol-free). */
export interface AgentHeartbeat {
  sequence: bigint;
  metrics: WorkerMetrics;
  /** The agent is draining on its own initiative (SIGTERM) or after a Drain command. */
  draining: boolean;
}

/** Messages the fleet sends down a worker's stream; the handler maps them to protobuf. */
export type ControlEnvelope = { correlationId: string } & (
  | {
      kind: 'welcome';
      workerId: string;
      heartbeatIntervalMs: number;
      leaseTtlMs: number;
      replicaId: string;
      /** A fresh credential for the next connection; replaces the stored one. */
      workerCredential: string;
    }
  | { kind: 'heartbeatAck'; sequence: bigint; leaseExpiresAt: Date }
  | WorkerCommand
);

/** A command for one worker, delivered over its stream (through its owner replica if need be). */
export type WorkerCommand = { kind: 'drain'; reason: string } | { kind: 'shutdown'; reason: string };

/** What came of a command. */
export interface CommandResult {
  delivered: boolean;
  detail: string;
}

/** Filters for listing workers. */
export interface WorkerQuery {
  status?: WorkerStatus;
  pageSize: number;
  /** Name of the last worker on the previous page. */
  afterName?: string;
  agentVersion?: string;
  labels?: LabelRequirement[];
}

/** Timing the fleet enforces; compiled once from configuration. */
export interface FleetOptions {
  heartbeatIntervalMs: number;
  leaseTtlMs: number;
  sweepIntervalMs: number;
  metricsFlushIntervalMs: number;
  replicaId: string;
  /** How long a worker whose connection was lost may take to come back before it is FAILED. */
  failureGraceMs: number;
  /** A stream is ended after this long (±10%), so agents rebalance across replicas. */
  maxConnectionAgeMs: number;
  /** How long the fleet-wide sweeper role lasts without renewal. */
  sweeperLeadershipTtlMs: number;
  guard: FailureGuardPolicy;
}
