import { describe, expect, it } from 'vitest';
import { TENANT_ROLES } from '../../src/identity/identity.types.js';
import { canGrantRole, canManageMember, lesserRole, roleAllows, type Permission } from '../../src/identity/roles.js';

const MUTATIONS: Permission[] = ['members.manage', 'api_keys.manage', 'sessions.manage', 'messages.send'];

describe('tenant roles', () => {
  it('lets VIEWER read and nothing else', () => {
    expect(roleAllows('VIEWER', 'tenant.read')).toBe(true);
    for (const permission of [...MUTATIONS, 'audit.read'] as Permission[])
      expect(roleAllows('VIEWER', permission)).toBe(false);
  });

  it('lets DEVELOPER manage API keys but not people or the audit log', () => {
    expect(roleAllows('DEVELOPER', 'api_keys.manage')).toBe(true);
    expect(roleAllows('DEVELOPER', 'members.manage')).toBe(false);
    expect(roleAllows('DEVELOPER', 'audit.read')).toBe(false);
  });

  it('never lets anyone grant more than they have, and only owners make owners', () => {
    const table = Object.fromEntries(
      TENANT_ROLES.map((actor) => [actor, TENANT_ROLES.filter((target) => canGrantRole(actor, target))]),
    );
    expect(table).toEqual({
      OWNER: ['OWNER', 'ADMIN', 'DEVELOPER', 'VIEWER'],
      ADMIN: ['ADMIN', 'DEVELOPER', 'VIEWER'],
      DEVELOPER: ['DEVELOPER', 'VIEWER'],
      VIEWER: ['VIEWER'],
    });
  });

  it('lets admins manage everyone but owners', () => {
    expect(canManageMember('ADMIN', 'DEVELOPER')).toBe(true);
    expect(canManageMember('ADMIN', 'OWNER')).toBe(false);
    expect(canManageMember('OWNER', 'OWNER')).toBe(true);
    expect(canManageMember('DEVELOPER', 'VIEWER')).toBe(false);
  });

  it('gives an API key the lesser of its own role and its creator’s', () => {
    expect(lesserRole('ADMIN', 'DEVELOPER')).toBe('DEVELOPER');
    expect(lesserRole('DEVELOPER', 'OWNER')).toBe('DEVELOPER');
    expect(lesserRole('VIEWER', 'VIEWER')).toBe('VIEWER');
    // TENANT_ROLES lists the most powerful first.
    const weaker = (a: number, b: number) => TENANT_ROLES[Math.max(a, b)];
    TENANT_ROLES.forEach((a, i) => TENANT_ROLES.forEach((b, j) => expect(lesserRole(a, b)).toBe(weaker(i, j))));
  });
});
