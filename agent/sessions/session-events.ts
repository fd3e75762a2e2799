import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Engine as EngineEnum } from '../../gen/switchboard/v1/fleet_pb.js';
import type { SessionEventSchema } from '../../gen/switchboard/v1/worker_pb.js';
import type { EngineEvent, EngineKind } from '../engines/engine.js';
import type { SendOutcome } from './outbound-queue.js';

/** One SessionEvent as it goes up the stream; the agent wraps it in an envelope with a fresh correlation id. */
export type SessionEventInit = MessageInitShape<typeof SessionEventSchema>;

/** The engine kind of an assignment, or undefined for one this agent does not know. */
export function engineKind(engine: EngineEnum): EngineKind | undefined {
  switch (engine) {
    case EngineEnum.SANDBOX:
      return 'SANDBOX';
    case EngineEnum.BAILEYS:
      return 'BAILEYS';
    case EngineEnum.UNSPECIFIED:
      return undefined;
    default:
      // A number from a newer control plane.
      return undefined;
  }
}

/** An engine event as the SessionEvent payload that reports it (none for a pairing code). */
export function toEventPayload(event: EngineEvent): SessionEventInit['event'] {
  switch (event.kind) {
    case 'qr':
      return {
        case: 'qr',
        value: { payload: event.payload, expiresAt: timestampFromDate(event.expiresAt), sequence: event.sequence },
      };
    case 'connected':
      return { case: 'connected', value: { ...event.identity } };
    case 'authCheckpoint':
      return { case: 'authCheckpoint', value: { state: event.state } };
    case 'ended':
      return { case: 'ended', value: { reason: event.reason, detail: event.detail } };
    case 'inbound':
      return {
        case: 'inboundMessage',
        value: {
          messageId: event.message.messageId,
          from: event.message.from,
          text: event.message.text,
          at: timestampFromDate(event.message.at),
        },
      };
    case 'messageStatus':
      return {
        case: 'messageStatus',
        value: { messageId: event.messageId, status: event.status, at: timestampFromDate(event.at) },
      };
    case 'pairingCode':
      return undefined;
    default:
      return event satisfies never;
  }
}

/** A dispatched message's outcome as the event that reports it. */
export function toOutcomePayload(outcome: SendOutcome): SessionEventInit['event'] {
  switch (outcome.kind) {
    case 'sent':
      return {
        case: 'messageSent',
        value: { messageId: outcome.messageId, whatsappMessageId: outcome.whatsappMessageId },
      };
    case 'failed':
      return {
        case: 'messageFailed',
        value: { messageId: outcome.messageId, code: outcome.code, reason: outcome.reason },
      };
    default:
      return outcome satisfies never;
  }
}
