import { create, toJson } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { SessionQrIssuedSchema, SessionStatusChangedSchema } from '../../gen/switchboard/v1/event_pb.js';
import { SessionStatus as SessionStatusProto } from '../../gen/switchboard/v1/session_pb.js';
import type { SessionEventPayloads } from './session-events.js';
import { sessionStatusToProto } from './session.handler.js';

/** The Connect JSON of session events, as the event log stores them and StreamEvents serves them. */
export const sessionEventPayloads: SessionEventPayloads = {
  status(change) {
    return toJson(
      SessionStatusChangedSchema,
      create(SessionStatusChangedSchema, {
        status: sessionStatusToProto(change.status),
        previousStatus: change.previousStatus
          ? sessionStatusToProto(change.previousStatus)
          : SessionStatusProto.UNSPECIFIED,
        reason: change.reason,
        phoneNumber: change.phoneNumber,
      }),
    );
  },
  qr(qr) {
    return toJson(
      SessionQrIssuedSchema,
      create(SessionQrIssuedSchema, { qrPayload: qr.payload, expiresAt: timestampFromDate(qr.expiresAt) }),
    );
  },
};
