import { randomUUID } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromMs, timestampNow } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import {
  MessageDirection,
  MessageService,
  MessageStatus,
  type SendTextRequest,
  type SendTextResponse,
  SendTextResponseSchema,
} from '../../gen/switchboard/v1/message_pb.js';
import {
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  type Response,
  WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import { AsyncQueue } from '../../src/platform/async-queue.js';
import { sendToParent } from '../harness/ipc.js';
import { listenH2c, serveInChild } from '../harness/serve.js';
import type { FloorEvent } from './ipc.js';

/**
 * The floor of bench/send: the same two hops as a SendText through the
 * control plane, and nothing else. A tenant's MessageService.SendText
 * (unary, gRPC over h2c) becomes a Request on one agent's
 * WorkerService.Connect stream, the agent's Response becomes the reply.
 * Same stack as the control plane (Node http2, connect-node, protobuf-es,
 * the AsyncQueue the control plane's streams use), but no authentication,
 * validation, database, Redis or session lookup: the stream is picked by a
 * hash of the session id.
 */
const REQUEST_TIMEOUT_MS = 15_000;
const streams: AsyncQueue<ControlMessage>[] = [];
const waiting = new Map<string, (response: Response) => void>();

function routes(router: ConnectRouter): void {
  router.service(WorkerService, {
    async *connect(requests: AsyncIterable<AgentMessage>): AsyncIterable<ControlMessage> {
      const outbound = new AsyncQueue<ControlMessage>();
      // Inbound and outbound run concurrently, as in the control plane's handler.
      const inbound = (async () => {
        for await (const { correlationId, payload } of requests) {
          switch (payload.case) {
            case 'hello':
              outbound.push(
                create(ControlMessageSchema, {
                  correlationId,
                  payload: {
                    case: 'welcome',
                    value: {
                      workerId: randomUUID(),
                      heartbeatInterval: durationFromMs(2000),
                      leaseTtl: durationFromMs(10_000),
                      replicaId: 'floor',
                    },
                  },
                }),
              );
              streams.push(outbound);
              void sendToParent<FloorEvent>({ type: 'agents', connected: streams.length });
              break;
            case 'response': {
              const resolve = waiting.get(correlationId);
              waiting.delete(correlationId);
              resolve?.(payload.value);
              break;
            }
            case 'heartbeat':
            case 'commandAck':
            case 'sessionEvent':
            case 'sessionEvents':
              // The floor agent sends none of these.
              break;
            case undefined:
              throw new ConnectError('envelope has no payload', Code.InvalidArgument);
            default:
              payload satisfies never;
          }
        }
      })().then(
        () => outbound.close(),
        (error: unknown) => outbound.close(error),
      );
      try {
        yield* outbound;
      } finally {
        void inbound;
        const index = streams.indexOf(outbound);
        if (index >= 0) streams.splice(index, 1);
      }
    },
  });
  router.service(MessageService, {
    async sendText(request: SendTextRequest): Promise<SendTextResponse> {
      const stream = streams[routeOf(request.sessionId) % streams.length];
      if (!stream) throw new ConnectError('no agent connected', Code.Unavailable);
      const correlationId = randomUUID();
      const response = await new Promise<Response>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(correlationId);
          reject(new ConnectError('the agent did not answer', Code.Unavailable));
        }, REQUEST_TIMEOUT_MS);
        waiting.set(correlationId, (answer) => {
          clearTimeout(timer);
          resolve(answer);
        });
        stream.push(
          create(ControlMessageSchema, {
            correlationId,
            payload: {
              case: 'request',
              value: {
                sessionId: request.sessionId,
                epoch: 1,
                deadline: timestampFromMs(Date.now() + REQUEST_TIMEOUT_MS),
                action: { case: 'sendText', value: { to: request.to, text: request.text } },
              },
            },
          }),
        );
      });
      if (response.result.case !== 'messageId') throw new ConnectError('the agent refused', Code.Internal);
      // The same shape the control plane answers with.
      const now = timestampNow();
      return create(SendTextResponseSchema, {
        message: {
          id: randomUUID(),
          sessionId: request.sessionId,
          direction: MessageDirection.OUTBOUND,
          whatsappMessageId: response.result.value,
          chat: request.to,
          text: request.text,
          status: MessageStatus.SENT,
          createdAt: now,
          updatedAt: now,
        },
      });
    },
  });
}

/** The last 32 bits of the UUID: session ids are random, so streams get an even share. */
function routeOf(sessionId: string): number {
  return Number.parseInt(sessionId.slice(-8), 16) || 0;
}

await serveInChild(() => listenH2c(routes));
