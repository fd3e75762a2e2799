import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AgentMessageSchema, type ControlMessage, WorkerService } from '../../gen/switchboard/v1/worker_pb.js';
import { AsyncQueue } from '../../src/platform/async-queue.js';

/**
 * A hand-driven WorkerService.Connect stream over a connect-node gRPC client:
 * the test decides exactly what the "agent" sends and when.
 */
export class RawAgentStream {
  private readonly outbound = new AsyncQueue<ReturnType<typeof create<typeof AgentMessageSchema>>>();
  private readonly inbound: AsyncIterator<ControlMessage>;
  private readonly abort = new AbortController();
  private seq = 0;

  constructor(
    grpcUrl: string,
    private readonly joinToken = '',
  ) {
    const client: Client<typeof WorkerService> = createClient(WorkerService, createGrpcTransport({ baseUrl: grpcUrl }));
    this.inbound = client.connect(this.outbound, { signal: this.abort.signal })[Symbol.asyncIterator]();
  }

  send(payload: MessageInitShape<typeof AgentMessageSchema>['payload'], correlationId = `c-${++this.seq}`): void {
    this.outbound.push(create(AgentMessageSchema, { correlationId, payload }));
  }

  /** Acknowledges a command, as an agent must. */
  acknowledge(command: ControlMessage): void {
    this.send({ case: 'commandAck', value: { accepted: true, detail: 'ok' } }, command.correlationId);
  }

  hello(workerName: string, overrides: Record<string, unknown> = {}): void {
    this.send({
      case: 'hello',
      value: {
        workerName,
        agentVersion: 'raw-1',
        capacity: 10,
        supportedEngines: [1],
        instanceId: `raw-instance-${workerName}`,
        labels: { zone: 'raw' },
        credential: this.joinToken ? { case: 'joinToken', value: this.joinToken } : { case: undefined },
        ...overrides,
      },
    });
  }

  heartbeat(sequence: bigint): void {
    this.send({ case: 'heartbeat', value: { sequence, metrics: { rssBytes: 1234n, cpuPercent: 1.5, cpuCount: 2 } } });
  }

  /** The next control message, or the error that ended the stream. */
  async next(): Promise<ControlMessage> {
    const result = await this.inbound.next();
    if (result.done) throw new Error('stream ended');
    return result.value;
  }

  /** Half-closes the request side, as a clean agent shutdown does. */
  end(): void {
    this.outbound.close();
  }

  cancel(): void {
    this.abort.abort();
  }
}
