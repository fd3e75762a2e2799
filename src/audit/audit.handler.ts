import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  type AuditEvent as AuditEventMessage,
  AuditEventSchema,
  type AuditService as AuditServiceDesc,
  ListAuditEventsResponseSchema,
} from '../../gen/switchboard/v1/audit_pb.js';
import { decodeTimeCursor, encodeTimeCursor, normalisePageSize } from '../fleet/page-token.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { AuditEvent } from './audit-event.entity.js';
import type { AuditService } from './audit.service.js';

/**
 * AuditService: protobuf <-> AuditService use cases (who reads which tenant
 * is the service's rule); every RPC, so a new one fails to compile until served.
 */
export function createAuditHandler(audit: AuditService): ServiceImpl<typeof AuditServiceDesc> {
  return {
    async listAuditEvents(req, ctx) {
      const tenantId = audit.readableTenant(requirePrincipal(ctx), req.tenantId || null);
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const before = decodeTimeCursor(req.pageToken);
      const events = await audit.list(requestEntityManager(ctx), {
        tenantId,
        actionPrefix: req.actionPrefix,
        pageSize: pageSize + 1,
        before,
      });
      const page = events.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListAuditEventsResponseSchema, {
        events: page.map(auditEventToProto),
        nextPageToken: events.length > pageSize && last ? encodeTimeCursor(last) : '',
      });
    },
  };
}

function auditEventToProto(event: AuditEvent): AuditEventMessage {
  return create(AuditEventSchema, {
    id: event.id,
    occurredAt: timestampFromDate(event.occurredAt),
    action: event.action,
    tenantId: event.tenantId ?? '',
    actorUserId: event.actorUserId ?? '',
    actorApiKeyId: event.actorApiKeyId ?? '',
    targetType: event.targetType,
    targetId: event.targetId,
    ip: event.ip,
    userAgent: event.userAgent,
    details: event.details,
  });
}
