import type { ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  GetMessageResponseSchema,
  MessageDirection as MessageDirectionProto,
  MessageSchema,
  MessageStatus as MessageStatusProto,
  SendTextResponseSchema,
  type MessageService as MessageServiceDesc,
} from '../../gen/switchboard/v1/message_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { Message, MessageStatus } from './message.entity.js';
import type { MessageService } from './message.service.js';

const MESSAGE_STATUS: Record<MessageStatus, MessageStatusProto> = {
  QUEUED: MessageStatusProto.QUEUED,
  SENT: MessageStatusProto.SENT,
  DELIVERED: MessageStatusProto.DELIVERED,
  READ: MessageStatusProto.READ,
  FAILED: MessageStatusProto.FAILED,
  RECEIVED: MessageStatusProto.RECEIVED,
};

function messageToProto(message: Message) {
  return create(MessageSchema, {
    id: message.id,
    sessionId: message.sessionId,
    direction: message.direction === 'OUTBOUND' ? MessageDirectionProto.OUTBOUND : MessageDirectionProto.INBOUND,
    whatsappMessageId: message.whatsappMessageId ?? '',
    chat: message.chat,
    text: message.text,
    status: MESSAGE_STATUS[message.status],
    createdAt: timestampFromDate(message.createdAt),
    updatedAt: timestampFromDate(message.updatedAt),
  });
}

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
