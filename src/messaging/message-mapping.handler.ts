import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ChatSchema,
  MessageDirection as MessageDirectionProto,
  MessageSchema,
  MessageStatus as MessageStatusProto,
  type Chat as ChatProto,
  type Message as MessageProto,
} from '../../gen/switchboard/v1/message_pb.js';
import { DomainError } from '../../lib/errors.js';
import type { Message, MessageDirection, MessageStatus } from './message.entity.js';
import type { ChatView } from './message-history.js';

const MESSAGE_STATUS: Record<MessageStatus, MessageStatusProto> = {
  QUEUED: MessageStatusProto.QUEUED,
  SENT: MessageStatusProto.SENT,
  DELIVERED: MessageStatusProto.DELIVERED,
  READ: MessageStatusProto.READ,
  FAILED: MessageStatusProto.FAILED,
  RECEIVED: MessageStatusProto.RECEIVED,
};

export function messageStatusToProto(status: MessageStatus): MessageStatusProto {
  return MESSAGE_STATUS[status];
}

/** The domain status of a (validated, specified) protobuf status. */
export function messageStatusFromProto(status: MessageStatusProto): MessageStatus {
  const found = (Object.entries(MESSAGE_STATUS) as [MessageStatus, MessageStatusProto][]).find(([, p]) => p === status);
  if (!found) throw DomainError.invalidArgument('statuses', 'unknown message status');
  return found[0];
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

const optionalTimestamp = (at: Date | null) => (at ? timestampFromDate(at) : undefined);

/** A stored message as the API shows it (GetMessage, ListMessages, SendText, message.* events). */
export function messageToProto(message: Message): MessageProto {
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
    idempotencyKey: message.idempotencyKey ?? '',
    sender: message.sender,
    type: message.type,
    sentAt: optionalTimestamp(message.sentAt),
    deliveredAt: optionalTimestamp(message.deliveredAt),
    readAt: optionalTimestamp(message.readAt),
    failedAt: optionalTimestamp(message.failedAt),
    failureReason: message.failureReason,
    heldUntil: optionalTimestamp(message.heldUntil),
    heldReason: message.heldReason,
  });
}

export function chatToProto(view: ChatView): ChatProto {
  return create(ChatSchema, {
    sessionId: view.chat.sessionId,
    chat: view.chat.chat,
    lastMessage: view.lastMessage ? messageToProto(view.lastMessage) : undefined,
    unreadCount: view.chat.unreadCount,
    lastActivityAt: timestampFromDate(view.chat.lastActivityAt),
  });
}
