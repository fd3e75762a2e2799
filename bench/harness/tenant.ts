import { randomBytes } from 'node:crypto';
import { createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { ApiKeyService } from '../../gen/switchboard/v1/api_key_pb.js';
import { AuthService } from '../../gen/switchboard/v1/auth_pb.js';
import { Role } from '../../gen/switchboard/v1/identity_pb.js';
import { MessageService } from '../../gen/switchboard/v1/message_pb.js';
import { SandboxService } from '../../gen/switchboard/v1/sandbox_pb.js';
import { SessionService } from '../../gen/switchboard/v1/session_pb.js';

/** A signed-up tenant as an integration sees it: an API key and clients that present it. */
export interface BenchTenant {
  tenantId: string;
  /** sb_live_...: what every call presents (an access token would expire after 15 minutes). */
  apiKey: string;
  sessions: Client<typeof SessionService>;
  sandbox: Client<typeof SandboxService>;
  messages: Client<typeof MessageService>;
}

/**
 * Signs up a tenant through AuthService/SignUp (as a customer would), has
 * its owner create a DEVELOPER API key, and returns gRPC clients (HTTP/2, one
 * connection multiplexing every call) that present the key.
 */
export async function signUpTenant(httpUrl: string, grpcUrl: string, name: string): Promise<BenchTenant> {
  const connect = createConnectTransport({ baseUrl: httpUrl, httpVersion: '1.1' });
  const signedUp = await createClient(AuthService, connect).signUp(
    {
      email: `${name}-${randomBytes(4).toString('hex')}@bench.local`,
      password: randomBytes(18).toString('base64url'),
      displayName: `${name} owner`,
      tenantName: name,
    },
    { timeoutMs: 30_000 },
  );
  const accessToken = signedUp.tokens?.accessToken;
  const tenantId = signedUp.tenant?.id;
  if (!accessToken || !tenantId) throw new Error('SignUp returned no access token or tenant');
  const { secret } = await createClient(ApiKeyService, connect).createApiKey(
    { name: 'bench', role: Role.DEVELOPER },
    { headers: { authorization: `Bearer ${accessToken}` }, timeoutMs: 30_000 },
  );
  const transport = tenantTransport(grpcUrl, secret);
  return {
    tenantId,
    apiKey: secret,
    sessions: createClient(SessionService, transport),
    sandbox: createClient(SandboxService, transport),
    messages: createClient(MessageService, transport),
  };
}

/** gRPC over h2c with `authorization: Bearer <credential>` on every call. */
export function tenantTransport(grpcUrl: string, credential: string): Transport {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set('authorization', `Bearer ${credential}`);
    return next(request);
  };
  return createGrpcTransport({ baseUrl: grpcUrl, interceptors: [bearer] });
}
