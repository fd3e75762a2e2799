import { create, toJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  MessageDirection as MessageDirectionProto,
  MessageSchema,
  MessageStatus as MessageStatusProto,
  type Message as MessageProto,
} from '../../gen/switchboard/v1/message_pb.js';
import type { Message, MessageStatus } from './message.entity.js';

const MESSAGE_STATUS: Record<MessageStatus, MessageStatusProto> = {
  QUEUED: MessageStatusProto.QUEUED,
  SENT: MessageStatusProto.SENT,
  DELIVERED: MessageStatusProto.DELIVERED,
  READ: MessageStatusProto.READ,
  FAILED: MessageStatusProto.FAILED,
  RECEIVED: MessageStatusProto.RECEIVED,
};

const stamp = (at: Date | null) => (at ? timestampFromDate(at) : undefined);

/** One Message -> protobuf mapping, shared by the RPC handlers and the event log (whose payloads are its JSON). */
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
    sentAt: stamp(message.sentAt),
    deliveredAt: stamp(message.deliveredAt),
    readAt: stamp(message.readAt),
    failedAt: stamp(message.failedAt),
    failureReason: message.failureReason,
    heldUntil: stamp(message.heldUntil),
    heldReason: message.heldReason,
  });
}

/** The Connect JSON of a message: the payload of message.* events (handed to messaging as a port, see MessageJson). */
export function messageToJson(message: Message): JsonValue {
  return toJson(MessageSchema, messageToProto(message));
}
