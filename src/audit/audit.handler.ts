import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  AuditEventSchema,
  type AuditService as AuditServiceDesc,
  ListAuditEventsResponseSchema,
} from '../../gen/switchboard/v1/audit_pb.js';
import { decodeTimeCursor, encodeTimeCursor, normalisePageSize } from '../fleet/page-token.js';
import { DomainError } from '../../lib/errors.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { AuditService } from './audit.service.js';

/** AuditService: tenant owners/admins read their tenant; platform admins read everything. */
export function createAuditHandler(audit: AuditService): Partial<ServiceImpl<typeof AuditServiceDesc>> {
  return {
    async listAuditEvents(req, ctx) {
      const principal = requirePrincipal(ctx);
      const platformAdmin = principal.kind === 'user' && principal.platformAdmin;
      if (req.tenantId && !platformAdmin) {
        throw new DomainError('PERMISSION_DENIED', 'only platform admins choose the tenant; yours is implied');
      }
      // Platform admins read every tenant (or the one they name); everyone else reads only their own.
      const tenantId = platformAdmin ? req.tenantId || null : principal.tenantId;
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
        events: page.map((e) =>
          create(AuditEventSchema, {
            id: e.id,
            occurredAt: timestampFromDate(e.occurredAt),
            action: e.action,
            tenantId: e.tenantId ?? '',
            actorUserId: e.actorUserId ?? '',
            actorApiKeyId: e.actorApiKeyId ?? '',
            targetType: e.targetType,
            targetId: e.targetId,
            ip: e.ip,
            userAgent: e.userAgent,
            details: e.details,
          }),
        ),
        nextPageToken: events.length > pageSize && last ? encodeTimeCursor(last) : '',
      });
    },
  };
}
