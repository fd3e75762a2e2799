import { randomUUID } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import {
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import { listenH2c, serveInChild } from '../harness/serve.js';

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
          case 'sessionEvents':
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

await serveInChild(() => listenH2c(routes));
