import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import { isMessage, sendToParent, type ServerCommand, type ServerEvent } from './ipc.js';

/**
 * The floor: the cheapest server that speaks WorkerService.Connect. Same
 * stack as the control plane (Node http2, connect-node, protobuf-es) but no
 * database, no Redis, no interceptors, no fleet bookkeeping: it answers a
 * Hello with a Welcome and a Heartbeat with its HeartbeatAck. Whatever the
 * control plane costs above this is ours to explain.
 */
const heartbeatIntervalMs = Number(process.env.HEARTBEAT_INTERVAL_MS ?? 1000);
const leaseTtlMs = Number(process.env.LEASE_TTL_MS ?? 10_000);

function routes(router: ConnectRouter): void {
  router.service(WorkerService, {
    async *connect(requests: AsyncIterable<AgentMessage>): AsyncIterable<ControlMessage> {
      for await (const { correlationId, payload } of requests) {
        switch (payload.case) {
          case 'hello':
            yield create(ControlMessageSchema, {
              correlationId,
              payload: {
                case: 'welcome',
                value: {
                  workerId: randomUUID(),
                  heartbeatInterval: durationFromMs(heartbeatIntervalMs),
                  leaseTtl: durationFromMs(leaseTtlMs),
                  replicaId: 'floor',
                },
              },
            });
            break;
          case 'heartbeat':
            yield create(ControlMessageSchema, {
              correlationId,
              payload: {
                case: 'heartbeatAck',
                value: { sequence: payload.value.sequence, leaseExpiresAt: timestampFromMs(Date.now() + leaseTtlMs) },
              },
            });
            break;
          case 'commandAck':
          case 'sessionEvent':
          case 'response':
            // The floor sends no commands and runs no sessions: nothing to do.
            break;
          case undefined:
            throw new ConnectError('envelope has no payload', Code.InvalidArgument);
          default:
            payload satisfies never;
        }
      }
    },
  });
}

const server = http2.createServer(connectNodeAdapter({ routes }));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  void sendToParent<ServerEvent>({ type: 'ready', grpcUrl: `http://127.0.0.1:${port}` });
});
server.on('error', (error) => {
  void sendToParent<ServerEvent>({ type: 'failed', message: error.message }).then(() => process.exit(1));
});

const stop = (code: number) => {
  server.close();
  process.exit(code);
};
process.on('SIGTERM', () => stop(0));
process.on('message', (message: unknown) => {
  if (isMessage<ServerCommand>(message) && message.type === 'stop') stop(0);
});
process.on('disconnect', () => stop(1));
