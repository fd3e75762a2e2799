import type { ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import {
  GetMessageResponseSchema,
  SendTextResponseSchema,
  type MessageService as MessageServiceDesc,
} from '../../gen/switchboard/v1/message_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import { messageToProto } from './message-mapping.handler.js';
import type { MessageService } from './message.service.js';

/** MessageService: protobuf <-> domain only. */
export function createMessageHandler(messages: MessageService): Partial<ServiceImpl<typeof MessageServiceDesc>> {
  return {
    async sendText(req, ctx) {
      const message = await messages.sendText(requestEntityManager(ctx), requirePrincipal(ctx), {
        sessionId: req.sessionId,
        to: req.to,
        text: req.text,
        idempotencyKey: req.idempotencyKey,
      });
      return create(SendTextResponseSchema, { message: messageToProto(message) });
    },
    async getMessage(req, ctx) {
      const message = await messages.get(requestEntityManager(ctx), requirePrincipal(ctx), req.messageId);
      return create(GetMessageResponseSchema, { message: messageToProto(message) });
    },
  };
}
