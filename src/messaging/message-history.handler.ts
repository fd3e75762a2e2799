import type { ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  GetMessageResponseSchema,
  ListChatsResponseSchema,
  ListMessagesResponseSchema,
  type MessageService as MessageServiceDesc,
} from '../../gen/switchboard/v1/message_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { MessageHistory } from './message-history.js';
import { chatToProto, messageDirectionFromProto, messageStatusFromProto } from './message-history-mapping.handler.js';
import { messageToProto } from './message-mapping.handler.js';

/** The reads of MessageService (GetMessage, ListMessages, ListChats): protobuf <-> domain only. */
export function createMessageHistoryHandler(
  history: MessageHistory,
): Pick<ServiceImpl<typeof MessageServiceDesc>, 'getMessage' | 'listMessages' | 'listChats'> {
  return {
    async getMessage(req, ctx) {
      const message = await history.get(requestEntityManager(ctx), requirePrincipal(ctx), req.messageId);
      return create(GetMessageResponseSchema, { message: messageToProto(message) });
    },
    async listMessages(req, ctx) {
      const page = await history.listMessages(requestEntityManager(ctx), requirePrincipal(ctx), {
        sessionId: req.sessionId,
        chat: req.chat || undefined,
        direction: messageDirectionFromProto(req.direction),
        statuses: req.statuses.map(messageStatusFromProto),
        createdAfter: req.createdAfter ? timestampDate(req.createdAfter) : undefined,
        createdBefore: req.createdBefore ? timestampDate(req.createdBefore) : undefined,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return create(ListMessagesResponseSchema, {
        messages: page.messages.map(messageToProto),
        nextPageToken: page.nextPageToken,
      });
    },
    async listChats(req, ctx) {
      const page = await history.listChats(requestEntityManager(ctx), requirePrincipal(ctx), {
        sessionId: req.sessionId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return create(ListChatsResponseSchema, { chats: page.chats.map(chatToProto), nextPageToken: page.nextPageToken });
    },
  };
}
