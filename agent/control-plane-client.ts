import { fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  AgentMessageSchema,
  type ControlMessage,
  ControlMessageSchema,
  WorkerService,
} from '../gen/switchboard/v1/worker_pb.js';

/** The agent's end of WorkerService.Connect. */
export type AgentStream = grpc.ClientDuplexStream<AgentMessage, ControlMessage>;

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
export class ControlPlaneClient {
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
    const open = (this.client as unknown as Record<string, () => AgentStream>)[connectMethod.localName];
    if (!open) throw new Error('generated WorkerService client has no connect method');
    return open.call(this.client);
  }

  close(): void {
    this.client.close();
  }
}
