import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/logger.js';
import type { Resources } from '../platform/resources.js';
import type { CommandResult, ControlEnvelope, RequestResult, WorkerCommand } from './fleet.types.js';
import { leaseKey, ownerReplica, replicaKey } from './lease.js';
import type { LocalStreams, WorkerConnection } from './worker-connection.js';
import type { WorkerRefusals } from './worker-refusals.js';

/** How long a command waits for the agent's acknowledgement unless its sender says otherwise. */
export const COMMAND_TIMEOUT_MS = 5000;

/** Each replica listens on its own channel for commands to relay to its streams, and for replies. */
const replicaChannel = (replicaId: string) => `fleet:replica:${replicaId}`;

/** A command relayed between replicas, or the owner's reply (JSON over the coordination store). */
type ReplicaMessage =
  | { type: 'command'; requestId: string; from: string; workerId: string; command: WorkerCommand; timeoutMs: number }
  | { type: 'reply'; requestId: string; result: CommandResult };

/** What the router needs besides the shared resources. */
export interface CommandRouterPorts {
  /**
   * The decrypted auth state an AssignSession carries. Read by the replica
   * holding the worker's stream, so credentials never travel between
   * replicas through the coordination store.
   */
  loadAuthState: (sessionId: string) => Promise<Uint8Array>;
  refusals: WorkerRefusals;
}

/**
 * Delivers commands to workers wherever their streams live: down a stream of
 * this replica, or through the replica holding it (named by the worker's
 * lease) over the coordination store. Every command has a deadline; a
 * stream that ends fails what waits on it at once.
 */
export class CommandRouter {
  /** Commands sent down a local stream, waiting for the agent's answer (by correlation id). */
  private readonly awaitingAck = new Map<string, (result: CommandResult) => void>();
  /** Commands relayed to another replica, waiting for its reply (by request id). */
  private readonly awaitingReplica = new Map<string, (result: CommandResult) => void>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly log: Logger;
  /** Responses that came after their request's deadline (dropped), since start. */
  lateResponses = 0;

  constructor(
    private readonly resources: Resources,
    private readonly streams: LocalStreams,
    private readonly replicaId: string,
    private readonly ports: CommandRouterPorts,
  ) {
    this.log = resources.logger.child({ component: 'command-router' });
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.resources.store.subscribe(replicaChannel(this.replicaId), (message) => {
      void this.onReplicaMessage(message);
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Sends `command` to the worker and waits up to `timeoutMs` for its answer. */
  async sendCommand(workerId: string, command: WorkerCommand, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> {
    const local = this.streams.get(workerId);
    if (local?.state === 'live') return this.sendLocal(local, command, timeoutMs);
    // The worker's lease names the replica holding its stream (the routing table);
    // that replica's own lease says whether anyone is there to relay.
    const { store } = this.resources;
    const [holder] = await store.readLeases([leaseKey(workerId)]);
    const owner = ownerReplica(holder ?? null);
    if (!owner || owner === this.replicaId) return { delivered: false, detail: 'the worker is not connected' };
    const [ownerAlive] = await store.readLeases([replicaKey(owner)]);
    if (ownerAlive === null) {
      return { delivered: false, detail: `the replica holding the worker's stream (${owner}) is gone` };
    }
    const requestId = randomUUID();
    const reply = this.waitFor(
      this.awaitingReplica,
      requestId,
      timeoutMs + 500,
      'no answer from the replica holding the worker',
    );
    const message: ReplicaMessage = { type: 'command', requestId, from: this.replicaId, workerId, command, timeoutMs };
    await store.publish(replicaChannel(owner), JSON.stringify(message));
    return reply;
  }

  /**
   * The agent answered a command sent down its stream. An answer to nothing
   * this stream waits for (too late, or another stream's command) is dropped.
   */
  commandAcknowledged(connection: WorkerConnection, correlationId: string, accepted: boolean, detail: string): void {
    const waiting = connection.awaiting.has(correlationId) ? this.awaitingAck.get(correlationId) : undefined;
    if (waiting) {
      waiting({ delivered: accepted, detail });
      return;
    }
    this.ports.refusals.record(connection.workerId, 'unknown_ack', (suppressed) =>
      this.log.info(
        { workerId: connection.workerId, correlationId, suppressed },
        'command acknowledgement for no waiting command dropped (late or unknown)',
      ),
    );
  }

  /** The agent answered a request sent down its stream; after the deadline nobody waits and it is dropped. */
  responseReceived(connection: WorkerConnection, correlationId: string, result: RequestResult): void {
    const waiting = connection.awaiting.has(correlationId) ? this.awaitingAck.get(correlationId) : undefined;
    if (waiting) {
      waiting({ delivered: true, detail: '', result });
      return;
    }
    this.lateResponses += 1;
    this.ports.refusals.record(connection.workerId, 'late_response', (suppressed) =>
      this.log.info(
        { workerId: connection.workerId, correlationId, lateResponses: this.lateResponses, suppressed },
        'late response dropped',
      ),
    );
  }

  /** Nobody will answer what was sent on a stream that ended: say so now rather than at each deadline. */
  streamEnded(connection: WorkerConnection): void {
    for (const correlationId of connection.awaiting) {
      this.awaitingAck.get(correlationId)?.({ delivered: false, detail: 'the worker disconnected before answering' });
    }
  }

  private async sendLocal(
    connection: WorkerConnection,
    command: WorkerCommand,
    timeoutMs: number,
  ): Promise<CommandResult> {
    let envelope: ControlEnvelope;
    try {
      envelope =
        command.kind === 'assignSession'
          ? { correlationId: randomUUID(), ...command, authState: await this.ports.loadAuthState(command.sessionId) }
          : { correlationId: randomUUID(), ...command };
    } catch (error) {
      this.log.error({ err: error, command: command.kind }, 'could not prepare a command for the worker');
      return { delivered: false, detail: error instanceof Error ? error.message : String(error) };
    }
    const { correlationId } = envelope;
    const ack = this.waitFor(this.awaitingAck, correlationId, timeoutMs, 'the agent did not acknowledge in time');
    connection.awaiting.add(correlationId);
    connection.send(envelope);
    return ack.finally(() => connection.awaiting.delete(correlationId));
  }

  private waitFor(
    pending: Map<string, (result: CommandResult) => void>,
    id: string,
    timeoutMs: number,
    timeoutDetail: string,
  ): Promise<CommandResult> {
    return new Promise((resolve) => {
      const timer = this.resources.scheduler.schedule(timeoutMs, () =>
        settle({ delivered: false, detail: timeoutDetail }),
      );
      const settle = (result: CommandResult) => {
        timer.cancel();
        pending.delete(id);
        resolve(result);
      };
      pending.set(id, settle);
    });
  }

  private async onReplicaMessage(raw: string): Promise<void> {
    try {
      const message = JSON.parse(raw) as ReplicaMessage;
      if (message.type === 'reply') {
        this.awaitingReplica.get(message.requestId)?.(message.result);
        return;
      }
      const connection = this.streams.get(message.workerId);
      const result =
        connection?.state === 'live'
          ? await this.sendLocal(connection, message.command, message.timeoutMs)
          : { delivered: false, detail: 'the worker is not connected to the replica it was recorded on' };
      const reply: ReplicaMessage = { type: 'reply', requestId: message.requestId, result };
      await this.resources.store.publish(replicaChannel(message.from), JSON.stringify(reply));
    } catch (error) {
      this.log.warn({ err: error }, 'could not handle a message from another replica');
    }
  }
}
