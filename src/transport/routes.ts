import type { ConnectRouter } from '@connectrpc/connect';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { ServerReflection as ServerReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { ApiKeyService } from '../../gen/switchboard/v1/api_key_pb.js';
import { AuditService } from '../../gen/switchboard/v1/audit_pb.js';
import { AuthService } from '../../gen/switchboard/v1/auth_pb.js';
import { EventService } from '../../gen/switchboard/v1/event_pb.js';
import { MemberService } from '../../gen/switchboard/v1/member_pb.js';
import { MessageService as MessageServiceDesc } from '../../gen/switchboard/v1/message_pb.js';
import { SandboxService } from '../../gen/switchboard/v1/sandbox_pb.js';
import { SessionService as SessionServiceDesc } from '../../gen/switchboard/v1/session_pb.js';
import { WorkerService } from '../../gen/switchboard/v1/worker_pb.js';
import { createAdminServiceHandler } from '../admin/admin.handler.js';
import { createAuditHandler } from '../audit/audit.handler.js';
import { createEventHandler } from '../events/event.handler.js';
import type { Events } from '../events/events.module.js';
import type { Fleet } from '../fleet/fleet.module.js';
import { createWorkerServiceHandler } from '../fleet/worker-stream.handler.js';
import { createApiKeyHandler } from '../identity/api-key.handler.js';
import { createAuthHandler } from '../identity/auth.handler.js';
import { createMemberHandler } from '../identity/member.handler.js';
import type { Identity } from '../identity/identity.module.js';
import { createMessageHandler } from '../messaging/message.handler.js';
import { MessageHistory } from '../messaging/message-history.js';
import { createMessageHistoryHandler } from '../messaging/message-history.handler.js';
import type { MessageService } from '../messaging/message.service.js';
import { createSendPolicyHandlers } from '../messaging/send-policy.handler.js';
import type { SendPolicyService } from '../messaging/send-policy.service.js';
import { createSandboxHandler } from '../sessions/sandbox.handler.js';
import { createSessionHandler } from '../sessions/session.handler.js';
import type { Sessions } from '../sessions/sessions.module.js';
import { createApiRegistry } from './api-registry.js';
import { registerHealth } from './health.handler.js';
import { registerReflection } from './reflection.handler.js';
import type { RefusedRequests } from './refused-requests.js';
import { reportRequestRefusals } from './request-refusals.js';
import type { ServiceHealth } from './service-health.js';

/** Services this process serves, as their fully-qualified names (health and reflection list them). */
export const SERVED_SERVICES: readonly string[] = [
  AuthService,
  ApiKeyService,
  MemberService,
  AuditService,
  AdminService,
  WorkerService,
  SessionServiceDesc,
  MessageServiceDesc,
  EventService,
  SandboxService,
  Health,
  ServerReflectionV1,
  ServerReflectionV1alpha,
].map((service) => service.typeName);

/** Everything the route table hands to handlers. */
export interface RouteDependencies {
  identity: Identity;
  fleet: Fleet;
  sessions: Sessions;
  messages: MessageService;
  events: Events;
  sendPolicies: SendPolicyService;
  health: ServiceHealth;
  /** Unary requests Connect refuses before our interceptors: limited, counted and logged here. */
  refusals: RefusedRequests;
}

/** The route table: every service on its handler, the same on both ports and all three protocols. */
export function createRoutes(deps: RouteDependencies): (router: ConnectRouter) => void {
  const { identity, fleet, sessions, messages } = deps;
  const registry = createApiRegistry();
  return (router) => {
    router.service(
      AdminService,
      createAdminServiceHandler({ fleet, joinTokens: identity.joinTokens, auth: identity.auth, audit: identity.audit }),
    );
    router.service(
      WorkerService,
      createWorkerServiceHandler({
        fleet: fleet.service,
        router: fleet.router,
        refusals: fleet.refusals,
        onSessionEvent: (workerId, event) => sessions.reports.onWorkerEvent(workerId, event),
        onMessageEvents: (workerId, events) => sessions.reports.onMessageEvents(workerId, events),
      }),
    );
    router.service(SessionServiceDesc, createSessionHandler(sessions.service, sessions.watch));
    router.service(MessageServiceDesc, {
      ...createMessageHandler(messages),
      ...createMessageHistoryHandler(new MessageHistory()),
      ...createSendPolicyHandlers(deps.sendPolicies),
    });
    router.service(EventService, createEventHandler(deps.events.feed));
    router.service(SandboxService, createSandboxHandler(sessions.service));
    router.service(AuthService, createAuthHandler(identity.auth));
    router.service(ApiKeyService, createApiKeyHandler(identity.apiKeys));
    router.service(MemberService, createMemberHandler(identity.members, identity.invitations));
    router.service(AuditService, createAuditHandler(identity.audit));
    registerHealth(router, deps.health);
    registerReflection(router, registry, () => SERVED_SERVICES);
    reportRequestRefusals(router, deps.refusals);
  };
}
