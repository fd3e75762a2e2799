import { AuditEventSchema } from '../../audit/audit-event.entity.js';
import { JoinTokenSchema } from '../../fleet/join-token.entity.js';
import { WorkerSchema } from '../../fleet/worker.entity.js';
import { WorkerEventSchema } from '../../fleet/worker-event.entity.js';
import { PlatformSettingSchema } from '../../fleet/platform-setting.entity.js';
import { WorkerMetricsRollupSchema } from '../../fleet/worker-metrics-rollup.entity.js';
import { SessionAuthStateSchema, SessionSchema } from '../../sessions/session.entity.js';
import { MessageSchema } from '../../messaging/message.entity.js';
import { MembershipSchema, TenantSchema, UserSchema } from '../../identity/account.entity.js';
import { ApiKeySchema } from '../../identity/api-key.entity.js';
import { AuthSessionSchema, RefreshTokenSchema } from '../../identity/auth-session.entity.js';
import { InvitationSchema } from '../../identity/invitation.entity.js';
import { SigningKeySchema } from '../../identity/signing-key.entity.js';

/** Every entity the ORM knows; one list so the app, the CLI and tests agree. */
export const entities = [
  WorkerSchema,
  WorkerEventSchema,
  PlatformSettingSchema,
  WorkerMetricsRollupSchema,
  SessionSchema,
  SessionAuthStateSchema,
  MessageSchema,
  JoinTokenSchema,
  TenantSchema,
  UserSchema,
  MembershipSchema,
  InvitationSchema,
  AuthSessionSchema,
  RefreshTokenSchema,
  ApiKeySchema,
  SigningKeySchema,
  AuditEventSchema,
];
