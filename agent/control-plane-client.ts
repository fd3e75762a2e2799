import { fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  AgentMessageSchema,
  type ControlMessage,
  ControlMessageSchema,
  WorkerService,
} from '../gen/switchboard/v1/worker_pb.js';

/**
 * The agent's end of one WorkerService.Connect stream: the part of a grpc-js
 * duplex call the agent uses, so tests can hand it an in-memory stream.
 * Listeners are called after the call that caused them returns (grpc-js
 * never calls them from inside write, end or cancel).
 */
export interface AgentStream {
  /** False once the agent ended the stream or it closed: writes would go nowhere. */
  readonly writable: boolean;
  write(message: AgentMessage): void;
  /** Half-closes: the agent sends nothing more, and the control plane ends its side in turn. */
  end(): void;
  /** Abandons the stream at once; it then fails with CANCELLED. */
  cancel(): void;
  on(event: 'data', listener: (message: ControlMessage) => void): unknown;
  /** The stream failed with a gRPC status (CANCELLED after cancel()). */
  on(event: 'error', listener: (error: StreamError) => void): unknown;
  /** `end`: the control plane ended its side cleanly; `close`: the stream is gone either way. */
  on(event: 'end' | 'close', listener: () => void): unknown;
}

/** How a stream failed: an Error with the gRPC status code and its message (grpc-js' ServiceError is one). */
export type StreamError = Error & Pick<grpc.ServiceError, 'code' | 'details'>;

/** Streams to one control-plane address; the agent keeps one per address and reuses it. */
export interface ControlPlaneChannel {
  openStream(): AgentStream;
  close(): void;
}

/**
 * Opens the channel to one control-plane address. The agent's one way to
 * the control plane: gRPC in production (grpcConnector), an in-memory
 * stream pair in tests.
 */
export type ControlPlaneConnector = (address: string) => ControlPlaneChannel;

/** The production connector: a gRPC channel per address with these keepalive settings. */
export function grpcConnector(options: ChannelOptions): ControlPlaneConnector {
  return (address) => new ControlPlaneClient(address, options);
}

/** Channel settings that find dead connections behind proxies and load balancers. */
export interface ChannelOptions {
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

const connectMethod = WorkerService.method.connect;

// A grpc-js service definition built from the generated protobuf-es
// descriptor, so the path and message types cannot drift from proto/.
const definition: grpc.ServiceDefinition = {
  [connectMethod.localName]: {
    path: `/${WorkerService.typeName}/${connectMethod.name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (message: AgentMessage) => Buffer.from(toBinary(AgentMessageSchema, message)),
    requestDeserialize: (bytes: Buffer) => fromBinary(AgentMessageSchema, bytes),
    responseSerialize: (message: ControlMessage) => Buffer.from(toBinary(ControlMessageSchema, message)),
    responseDeserialize: (bytes: Buffer) => fromBinary(ControlMessageSchema, bytes),
    originalName: connectMethod.name,
  },
};

const WorkerServiceClient = grpc.makeGenericClientConstructor(definition, WorkerService.typeName);

/** A gRPC channel to the control plane; streams are opened on it as needed. */
export class ControlPlaneClient implements ControlPlaneChannel {
  private readonly client: grpc.Client;

  constructor(address: string, options: ChannelOptions) {
    this.client = new WorkerServiceClient(address, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': options.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // Reconnects are paced by the agent's own jittered backoff.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
    });
  }

  openStream(): AgentStream {
    const open = (
      this.client as unknown as Record<string, () => grpc.ClientDuplexStream<AgentMessage, ControlMessage>>
    )[connectMethod.localName];
    if (!open) throw new Error('generated WorkerService client has no connect method');
    return open.call(this.client);
  }

  close(): void {
    this.client.close();
  }
}
