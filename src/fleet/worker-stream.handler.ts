import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  type WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import { DomainError } from '../platform/errors.js';
import { peerKey } from '../transport/context.js';
import type { FleetService } from './fleet.service.js';
import type { ControlEnvelope } from './fleet.types.js';
import type { DisconnectOutcome } from './worker-connection.js';
import { engineFromProto, metricsFromProto } from './fleet.mapping.js';

/**
 * WorkerService.Connect: decodes agent envelopes, hands them to the fleet
 * service, and encodes what the fleet sends back. Inbound and outbound run
 * concurrently: the fleet may push to the agent at any time.
 */
export function createWorkerServiceHandler(fleet: FleetService): Partial<ServiceImpl<typeof WorkerService>> {
  return {
    async *connect(requests: AsyncIterable<AgentMessage>, ctx: HandlerContext): AsyncIterable<ControlMessage> {
      const connection = fleet.openConnection(ctx.values.get(peerKey));
      let endReason = 'stream closed by agent';
      let outcome: DisconnectOutcome = 'clean';
      const inbound = (async () => {
        for await (const message of requests) {
          const { correlationId, payload } = message;
          switch (payload.case) {
            case 'hello':
              await fleet.accept(
                connection,
                {
                  workerName: payload.value.workerName,
                  agentVersion: payload.value.agentVersion,
                  capacity: payload.value.capacity,
                  supportedEngines: payload.value.supportedEngines.map(engineFromProto),
                  labels: { ...payload.value.labels },
                  instanceId: payload.value.instanceId,
                  workerId: payload.value.workerId,
                  heldSessions: payload.value.heldSessions.map((held) => ({
                    sessionId: held.sessionId,
                    epoch: held.epoch,
                  })),
                  credential:
                    payload.value.credential.case === 'joinToken'
                      ? { kind: 'join-token', token: payload.value.credential.value }
                      : payload.value.credential.case === 'workerCredential'
                        ? { kind: 'worker-credential', token: payload.value.credential.value }
                        : undefined,
                },
                correlationId,
              );
              break;
            case 'heartbeat':
              await fleet.heartbeat(
                connection,
                {
                  sequence: payload.value.sequence,
                  metrics: metricsFromProto(payload.value.metrics),
                  draining: payload.value.draining,
                },
                correlationId,
              );
              break;
            case 'commandAck':
              fleet.commandAcknowledged(correlationId, payload.value.accepted, payload.value.detail);
              break;
            case undefined:
              throw DomainError.invalidArgument('payload', 'envelope has no payload');
            default:
              payload satisfies never;
          }
          if (connection.state === 'closing') return;
        }
      })().then(
        () => {
          // A cancelled call ends the request stream too, but the agent did not say goodbye.
          if (ctx.signal.aborted) {
            endReason = 'agent connection lost';
            outcome = 'lost';
          }
          connection.outbound.close();
        },
        (error: unknown) => {
          if (error instanceof DomainError) {
            endReason = `refused: ${error.message}`;
            outcome = 'lost';
            connection.outbound.close(error);
          } else {
            // The agent is gone (reset, killed): nobody is left to tell.
            endReason = 'agent connection lost';
            outcome = 'lost';
            connection.outbound.close();
          }
        },
      );
      try {
        for await (const envelope of connection.outbound) yield toProto(envelope);
      } finally {
        // A Hello still being processed notices the closed connection and
        // undoes its registration (FleetService.accept), so no need to wait.
        void inbound;
        await fleet.disconnect(connection, endReason, outcome);
      }
    },
  };
}

function toProto(envelope: ControlEnvelope): ControlMessage {
  switch (envelope.kind) {
    case 'drain':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'drain', value: { reason: envelope.reason } },
      });
    case 'shutdown':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'shutdown', value: { reason: envelope.reason } },
      });
    case 'welcome':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'welcome',
          value: {
            workerId: envelope.workerId,
            heartbeatInterval: durationFromMs(envelope.heartbeatIntervalMs),
            leaseTtl: durationFromMs(envelope.leaseTtlMs),
            replicaId: envelope.replicaId,
            workerCredential: envelope.workerCredential,
          },
        },
      });
    case 'heartbeatAck':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'heartbeatAck',
          value: { sequence: envelope.sequence, leaseExpiresAt: timestampFromDate(envelope.leaseExpiresAt) },
        },
      });
  }
}
