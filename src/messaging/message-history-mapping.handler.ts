import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ChatSchema,
  MessageDirection as MessageDirectionProto,
  MessageStatus as MessageStatusProto,
  type Chat as ChatProto,
} from '../../gen/switchboard/v1/message_pb.js';
import { DomainError } from '../../lib/errors.js';
import type { MessageDirection, MessageStatus } from './message.entity.js';
import type { ChatView } from './message-history.js';
import { messageToProto } from './message-mapping.handler.js';

const STATUS_FROM_PROTO: ReadonlyMap<MessageStatusProto, MessageStatus> = new Map([
  [MessageStatusProto.QUEUED, 'QUEUED'],
  [MessageStatusProto.SENT, 'SENT'],
  [MessageStatusProto.DELIVERED, 'DELIVERED'],
  [MessageStatusProto.READ, 'READ'],
  [MessageStatusProto.FAILED, 'FAILED'],
  [MessageStatusProto.RECEIVED, 'RECEIVED'],
]);

/** The domain status of a ListMessages filter value (protovalidate already refused UNSPECIFIED). */
export function messageStatusFromProto(status: MessageStatusProto): MessageStatus {
  const found = STATUS_FROM_PROTO.get(status);
  if (!found) throw DomainError.invalidArgument('statuses', 'unknown message status');
  return found;
}

/** UNSPECIFIED means both directions. */
export function messageDirectionFromProto(direction: MessageDirectionProto): MessageDirection | undefined {
  switch (direction) {
    case MessageDirectionProto.OUTBOUND:
      return 'OUTBOUND';
    case MessageDirectionProto.INBOUND:
      return 'INBOUND';
    case MessageDirectionProto.UNSPECIFIED:
      return undefined;
  }
}

/** A chat with its last message, as ListChats shows it. */
export function chatToProto(view: ChatView): ChatProto {
  return create(ChatSchema, {
    sessionId: view.chat.sessionId,
    chat: view.chat.chat,
    lastMessage: view.lastMessage ? messageToProto(view.lastMessage) : undefined,
    unreadCount: view.chat.unreadCount,
    lastActivityAt: timestampFromDate(view.chat.lastActivityAt),
  });
}
