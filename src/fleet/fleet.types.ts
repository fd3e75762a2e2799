import type { LabelRequirement } from '../scheduling/label-selector.js';
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
  heldSessions: HeldSession[];
  /** How the agent proves it may join; absent means refused. */
  credential: { kind: 'join-token' | 'worker-credential'; token: string } | undefined;
}

/** A session an agent says it runs, under the epoch of its assignment. */
export interface HeldSession {
  sessionId: string;
  epoch: number;
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
  /** Queued messages for the worker's sessions; answered by message_sent / message_failed events, not an ack. */
  | { kind: 'dispatchMessages'; messages: readonly DispatchedMessage[] }
  | Exclude<WorkerCommand, { kind: 'assignSession' }>
  | (Extract<WorkerCommand, { kind: 'assignSession' }> & { authState: Uint8Array })
);

/** A message handed to a worker: sent through the session's engine under our id (the engine's dedupe key). */
export interface DispatchedMessage {
  sessionId: string;
  epoch: number;
  messageId: string;
  to: string;
  text: string;
}

/**
 * A command for one worker, delivered over its stream (through its owner
 * replica if need be). Plain JSON (bytes as base64, times as ISO strings):
 * it may travel between replicas over the coordination store.
 */
export type WorkerCommand =
  | { kind: 'drain'; reason: string }
  | { kind: 'shutdown'; reason: string }
  /** The auth state is not in the command: the replica holding the stream reads it (see FleetService.setAssignmentLoader). */
  | { kind: 'assignSession'; sessionId: string; epoch: number; engine: EngineKind }
  | { kind: 'stopSession'; sessionId: string; epoch: number; reason: string }
  | { kind: 'logoutSession'; sessionId: string; epoch: number }
  | { kind: 'request'; sessionId: string; epoch: number; deadline: string; action: RequestAction };

/** What a tenant asks of a session on its worker. */
export type RequestAction =
  | { kind: 'sendText'; to: string; text: string }
  | { kind: 'requestPairingCode'; phoneNumber: string }
  | { kind: 'sandboxScan'; phoneNumber: string; pushName: string; qrPayload: string; pairingCode: string }
  | { kind: 'sandboxInbound'; from: string; text: string };

/** The worker's answer to a request. `code` is a google.rpc code name. */
export type RequestResult =
  | { kind: 'error'; code: string; message: string }
  | { kind: 'messageId'; messageId: string }
  | { kind: 'pairingCode'; code: string; expiresAt: string }
  | { kind: 'done' };

/** Sends commands to workers wherever their streams live (the fleet's CommandRouter); other capabilities depend on this. */
export interface CommandSender {
  sendCommand(workerId: string, command: WorkerCommand, timeoutMs?: number): Promise<CommandResult>;
}

/** What came of a command; `result` is set for requests the worker answered. */
export interface CommandResult {
  delivered: boolean;
  detail: string;
  result?: RequestResult;
}

/** A session event as a worker reported it (protocol-free), stamped with its attempt. */
export interface WorkerSessionEvent {
  sessionId: string;
  epoch: number;
  occurredAt: Date;
  event:
    | { kind: 'qr'; payload: string; expiresAt: Date; sequence: number }
    | { kind: 'connected'; jid: string; phoneNumber: string; pushName: string }
    | { kind: 'authCheckpoint'; state: Uint8Array }
    | { kind: 'ended'; reason: string; detail: string }
    | { kind: 'inbound'; messageId: string; from: string; text: string; at: Date }
    | { kind: 'messageStatus'; messageId: string; status: string; at: Date }
    | { kind: 'messageSent'; messageId: string; whatsappMessageId: string }
    | { kind: 'messageFailed'; messageId: string; code: string; reason: string };
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
