import { randomBytes } from 'node:crypto';
import { login, postJson } from './control-plane.js';

/** A signed-up tenant with its owner's credentials. */
export interface TestTenant {
  tenantId: string;
  ownerId: string;
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
}

/** Signs up a new user and tenant through the public API, as a customer would. */
export async function signUp(httpUrl: string, name = 'acme'): Promise<TestTenant> {
  const email = `${name}-${randomBytes(4).toString('hex')}@example.com`;
  const password = 'a-long-enough-password';
  const { status, json } = await postJson(httpUrl, 'switchboard.v1.AuthService/SignUp', {
    email,
    password,
    displayName: `${name} owner`,
    tenantName: `${name} inc`,
  });
  if (status !== 200) throw new Error(`sign-up failed: ${JSON.stringify(json)}`);
  const result = json as {
    user: { id: string };
    tenant: { id: string };
    tokens: { accessToken: string; refreshToken: string };
  };
  return {
    tenantId: result.tenant.id,
    ownerId: result.user.id,
    email,
    password,
    accessToken: result.tokens.accessToken,
    refreshToken: result.tokens.refreshToken,
  };
}

/**
 * Signs up a user, invites them to `tenant` with `role`, has them accept, and
 * returns their access token in that tenant.
 */
export async function addMember(
  httpUrl: string,
  tenant: TestTenant,
  role: 'ADMIN' | 'DEVELOPER' | 'VIEWER',
): Promise<{ userId: string; token: string; email: string; password: string }> {
  const user = await signUp(httpUrl, role.toLowerCase());
  const invited = await postJson(
    httpUrl,
    'switchboard.v1.MemberService/InviteMember',
    { email: user.email, role: `ROLE_${role}` },
    tenant.accessToken,
  );
  if (invited.status !== 200) throw new Error(`invitation failed: ${JSON.stringify(invited.json)}`);
  const accepted = await postJson(
    httpUrl,
    'switchboard.v1.MemberService/AcceptInvitation',
    { token: invited.json.token },
    user.accessToken,
  );
  if (accepted.status !== 200) throw new Error(`accepting the invitation failed: ${JSON.stringify(accepted.json)}`);
  return {
    userId: user.ownerId,
    email: user.email,
    password: user.password,
    token: await login(httpUrl, user.email, user.password, tenant.tenantId),
  };
}
