import { describe, expect, it } from 'vitest';
import { createApiRegistry } from '../../src/transport/api-registry.js';
import { authorize } from '../../src/identity/access-control.js';
import type { Principal } from '../../src/identity/principal.js';
import { RPC_ACCESS } from '../../src/identity/rpc-access.js';
import { DomainError } from '../../lib/errors.js';

/** Every RPC of every service in the generated descriptors the server serves. */
function everyRpc(): string[] {
  const names: string[] = [];
  for (const type of createApiRegistry()) {
    if (type.kind !== 'service') continue;
    for (const method of type.methods) names.push(`${type.typeName}/${method.name}`);
  }
  return names.sort();
}

const owner: Principal = {
  kind: 'user',
  userId: 'u',
  tenantId: 't',
  role: 'OWNER',
  plan: 'free',
  platformAdmin: false,
  sessionId: 's',
};
const viewerKey: Principal = { kind: 'api-key', apiKeyId: 'k', tenantId: 't', role: 'VIEWER', plan: 'free' };
const ownerKey: Principal = { ...viewerKey, role: 'OWNER' };
const platformAdmin: Principal = { ...owner, tenantId: null, role: null, platformAdmin: true };

const refusal = (fn: () => void) => {
  try {
    fn();
  } catch (error) {
    return error instanceof DomainError ? error.code : 'other';
  }
  return 'allowed';
};

describe('the permission table', () => {
  it('lists every RPC the server serves (deny by default leaves nothing out by accident)', () => {
    const rpcs = everyRpc();
    expect(rpcs.length).toBeGreaterThan(20);
    expect(rpcs.filter((name) => !(name in RPC_ACCESS))).toEqual([]);
  });

  it('has no entries for RPCs that do not exist', () => {
    const rpcs = new Set(everyRpc());
    expect(Object.keys(RPC_ACCESS).filter((name) => !rpcs.has(name))).toEqual([]);
  });

  it('keeps member management and role grants for people: no API key, whatever its role', () => {
    const personOnly = Object.entries(RPC_ACCESS)
      .filter(([, access]) => access.kind === 'tenant-person')
      .map(([name]) => name);
    expect(personOnly.sort()).toEqual(
      [
        'switchboard.v1.ApiKeyService/CreateApiKey',
        'switchboard.v1.MemberService/InviteMember',
        'switchboard.v1.MemberService/ListInvitations',
        'switchboard.v1.MemberService/RevokeInvitation',
        'switchboard.v1.MemberService/RemoveMember',
        'switchboard.v1.MemberService/UpdateMemberRole',
      ].sort(),
    );
    for (const name of personOnly) {
      expect(
        refusal(() => authorize(RPC_ACCESS[name], ownerKey)),
        name,
      ).toBe('PERMISSION_DENIED');
      expect(
        refusal(() => authorize(RPC_ACCESS[name], owner)),
        name,
      ).toBe('allowed');
    }
  });

  it('refuses an RPC missing from the table, even to a platform admin', () => {
    expect(refusal(() => authorize(undefined, platformAdmin))).toBe('PERMISSION_DENIED');
  });

  it.each([
    ['switchboard.v1.AdminService/ListWorkers', undefined, 'UNAUTHENTICATED'],
    ['switchboard.v1.AdminService/ListWorkers', owner, 'PERMISSION_DENIED'],
    ['switchboard.v1.AdminService/ListWorkers', platformAdmin, 'allowed'],
    ['switchboard.v1.ApiKeyService/CreateApiKey', viewerKey, 'PERMISSION_DENIED'],
    ['switchboard.v1.ApiKeyService/ListApiKeys', viewerKey, 'allowed'],
    ['switchboard.v1.ApiKeyService/CreateApiKey', platformAdmin, 'PERMISSION_DENIED'],
    ['switchboard.v1.AuditService/ListAuditEvents', owner, 'allowed'],
    ['switchboard.v1.AuditService/ListAuditEvents', viewerKey, 'PERMISSION_DENIED'],
    ['switchboard.v1.AuditService/ListAuditEvents', platformAdmin, 'allowed'],
    ['switchboard.v1.AuthService/ChangePassword', viewerKey, 'PERMISSION_DENIED'],
    ['switchboard.v1.MemberService/AcceptInvitation', ownerKey, 'PERMISSION_DENIED'],
    ['switchboard.v1.MemberService/AcceptInvitation', platformAdmin, 'allowed'],
    ['switchboard.v1.AuthService/GetMe', viewerKey, 'allowed'],
    ['switchboard.v1.AuthService/Login', undefined, 'allowed'],
    ['switchboard.v1.WorkerService/Connect', undefined, 'allowed'],
  ] as const)('%s for %o: %s', (rpc, principal, expected) => {
    expect(refusal(() => authorize(RPC_ACCESS[rpc], principal))).toBe(expected);
  });
});
