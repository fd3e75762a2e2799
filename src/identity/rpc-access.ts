import type { Permission } from './roles.js';

/**
 * Who may call an RPC:
 * - `public`: anyone, no credential (sign-up, login, health, reflection);
 * - `worker`: agents; they prove themselves inside the stream's Hello;
 * - `signed-in`: any authenticated user or API key, no tenant permission needed;
 * - `user`: a signed-in person (not an API key), e.g. to change their password;
 * - `tenant`: a credential of a tenant whose role has `permission`;
 * - `tenant-person`: as `tenant`, but only a signed-in person: who belongs to a
 *   tenant and with which role is decided by people, so a leaked key cannot
 *   make itself accomplices that outlive its revocation;
 * - `tenant-or-platform`: as `tenant`, or a platform admin (sees all tenants);
 * - `platform`: platform admins only.
 */
export type RpcAccess =
  | { kind: 'public' }
  | { kind: 'worker' }
  | { kind: 'signed-in' }
  | { kind: 'user' }
  | { kind: 'tenant'; permission: Permission }
  | { kind: 'tenant-person'; permission: Permission }
  | { kind: 'tenant-or-platform'; permission: Permission }
  | { kind: 'platform' };

const PUBLIC: RpcAccess = { kind: 'public' };
const PLATFORM: RpcAccess = { kind: 'platform' };
const tenant = (permission: Permission): RpcAccess => ({ kind: 'tenant', permission });
const tenantPerson = (permission: Permission): RpcAccess => ({ kind: 'tenant-person', permission });

/**
 * The one permission table, keyed by "package.Service/Method". An RPC that is
 * not listed is refused (deny by default); a test checks every RPC the
 * server serves is listed.
 */
export const RPC_ACCESS: Readonly<Record<string, RpcAccess>> = {
  'switchboard.v1.AuthService/SignUp': PUBLIC,
  'switchboard.v1.AuthService/Login': PUBLIC,
  'switchboard.v1.AuthService/Refresh': PUBLIC,
  'switchboard.v1.AuthService/Logout': { kind: 'user' },
  'switchboard.v1.AuthService/GetMe': { kind: 'signed-in' },
  'switchboard.v1.AuthService/ChangePassword': { kind: 'user' },

  // Creating a key grants it a role: people only (a key must not mint its own successor).
  'switchboard.v1.ApiKeyService/CreateApiKey': tenantPerson('api_keys.manage'),
  'switchboard.v1.ApiKeyService/ListApiKeys': tenant('api_keys.read'),
  'switchboard.v1.ApiKeyService/RevokeApiKey': tenant('api_keys.manage'),

  'switchboard.v1.SessionService/CreateSession': tenant('sessions.manage'),
  // Platform admins read any tenant's sessions (audited); changing them stays with the tenant.
  'switchboard.v1.SessionService/GetSession': { kind: 'tenant-or-platform', permission: 'sessions.read' },
  'switchboard.v1.SessionService/ListSessions': { kind: 'tenant-or-platform', permission: 'sessions.read' },
  'switchboard.v1.SessionService/StartSession': tenant('sessions.manage'),
  'switchboard.v1.SessionService/StopSession': tenant('sessions.manage'),
  'switchboard.v1.SessionService/RestartSession': tenant('sessions.manage'),
  'switchboard.v1.SessionService/LogoutSession': tenant('sessions.manage'),
  'switchboard.v1.SessionService/DeleteSession': tenant('sessions.manage'),
  // The QR code and pairing code link an account: as sensitive as managing the session.
  'switchboard.v1.SessionService/GetQrCode': tenant('sessions.manage'),
  'switchboard.v1.SessionService/RequestPairingCode': tenant('sessions.manage'),
  'switchboard.v1.SessionService/WatchSession': tenant('sessions.read'),
  'switchboard.v1.MessageService/SendText': tenant('messages.send'),
  'switchboard.v1.MessageService/GetMessage': tenant('messages.read'),
  'switchboard.v1.MessageService/ListMessages': tenant('messages.read'),
  'switchboard.v1.MessageService/ListChats': tenant('messages.read'),
  'switchboard.v1.MessageService/GetSendPolicy': tenant('messages.read'),
  // The policy protects the number: changing it is managing the session.
  'switchboard.v1.MessageService/SetSendPolicy': tenant('sessions.manage'),
  // The tenant's event log; session.qr events are left out for roles that may not link accounts.
  'switchboard.v1.EventService/StreamEvents': tenant('messages.read'),
  'switchboard.v1.EventService/ListEvents': tenant('messages.read'),
  'switchboard.v1.SandboxService/ScanQr': tenant('sessions.manage'),
  'switchboard.v1.SandboxService/InjectInbound': tenant('sessions.manage'),

  'switchboard.v1.MemberService/ListMembers': tenant('members.read'),
  'switchboard.v1.MemberService/InviteMember': tenantPerson('members.manage'),
  'switchboard.v1.MemberService/ListInvitations': tenantPerson('members.manage'),
  'switchboard.v1.MemberService/RevokeInvitation': tenantPerson('members.manage'),
  // The invitee is not a member yet: any signed-in person, whatever tenant their token acts in.
  'switchboard.v1.MemberService/AcceptInvitation': { kind: 'user' },
  'switchboard.v1.MemberService/UpdateMemberRole': tenantPerson('members.manage'),
  'switchboard.v1.MemberService/RemoveMember': tenantPerson('members.manage'),

  'switchboard.v1.AuditService/ListAuditEvents': { kind: 'tenant-or-platform', permission: 'audit.read' },

  'switchboard.v1.AdminService/ListWorkers': PLATFORM,
  'switchboard.v1.AdminService/GetWorker': PLATFORM,
  'switchboard.v1.AdminService/CreateJoinToken': PLATFORM,
  'switchboard.v1.AdminService/SetUserStatus': PLATFORM,
  'switchboard.v1.AdminService/CordonWorker': PLATFORM,
  'switchboard.v1.AdminService/UncordonWorker': PLATFORM,
  'switchboard.v1.AdminService/DrainWorker': PLATFORM,
  'switchboard.v1.AdminService/RemoveWorker': PLATFORM,
  'switchboard.v1.AdminService/ListWorkerEvents': PLATFORM,
  'switchboard.v1.AdminService/WatchWorkers': PLATFORM,
  'switchboard.v1.AdminService/ShutdownWorker': PLATFORM,
  'switchboard.v1.AdminService/ReleaseReassignmentHold': PLATFORM,
  'switchboard.v1.AdminService/GetFleetSummary': PLATFORM,
  'switchboard.v1.AdminService/SetMaintenance': PLATFORM,

  'switchboard.v1.WorkerService/Connect': { kind: 'worker' },

  'grpc.health.v1.Health/Check': PUBLIC,
  'grpc.health.v1.Health/List': PUBLIC,
  'grpc.health.v1.Health/Watch': PUBLIC,
  'grpc.reflection.v1.ServerReflection/ServerReflectionInfo': PUBLIC,
  'grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo': PUBLIC,
};
