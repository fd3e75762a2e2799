import { AuditService } from '../audit/audit.service.js';
import type { Config } from '../config.js';
import { JoinTokenService } from '../fleet/join-token.service.js';
import type { Resources } from '../platform/resources.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Timer } from '../../lib/timers.js';
import { ApiKeyService } from './api-key.service.js';
import { AuthInvalidation } from './auth-invalidation.js';
import { AuthService } from './auth.service.js';
import { Authenticator } from './authenticator.js';
import { LiveAccess } from './live-access.js';
import { InvitationService } from './invitation.service.js';
import { LoginThrottle } from './login-throttle.js';
import { MemberService } from './member.service.js';
import { PasswordHasher } from './password-hasher.js';
import { RateLimits } from './rate-limits.js';
import { StreamLimits } from './stream-limits.js';
import { loadSigningKeyEncryptionKeys, SigningKeyVault } from './signing-key-vault.js';
import { TokenService } from './token.service.js';

/** The identity and access capability, built once by the composition root. */
export interface Identity {
  readonly tokens: TokenService;
  readonly auth: AuthService;
  readonly apiKeys: ApiKeyService;
  readonly members: MemberService;
  readonly invitations: InvitationService;
  readonly joinTokens: JoinTokenService;
  readonly audit: AuditService;
  readonly authenticator: Authenticator;
  readonly rateLimits: RateLimits;
  /** Re-checks the callers of long-lived calls while they live. */
  readonly liveAccess: LiveAccess;
  /** Caps concurrent streams per caller, tenant and anonymous address. */
  readonly streamLimits: StreamLimits;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** How often a replica reloads signing keys, picking up those other replicas created (rotation). */
export const KEY_REFRESH_MS = 5 * 60_000;
/** How often API keys' last-used times are written: one write per key per interval, not per call. */
export const LAST_USED_FLUSH_MS = 60_000;

export async function createIdentity(config: Config, resources: Resources): Promise<Identity> {
  const { orm, store, clock, scheduler, logger } = resources;
  const log = logger.child({ component: 'identity' });
  const audit = new AuditService(clock);
  const invalidation = new AuthInvalidation(store, log);
  const tokens = await startTokenService(config, resources, log);
  const apiKeys = new ApiKeyService(
    orm,
    clock,
    scheduler,
    audit,
    { cacheTtlMs: config.auth.cacheTtlMs, lastUsedFlushMs: LAST_USED_FLUSH_MS },
    invalidation,
    log,
  );
  const publish = (event: { userId?: string; sessionId?: string }) => invalidation.publish(event);
  const invitations = new InvitationService({
    clock,
    audit,
    ttlMs: config.auth.invitationTtlMs,
    invalidate: publish,
  });
  const auth = new AuthService({
    clock,
    hasher: new PasswordHasher(config.auth.argon2),
    tokens,
    throttle: new LoginThrottle(store, clock, config.auth.login),
    audit,
    refreshTokenTtlMs: config.auth.refreshTokenTtlMs,
    invalidate: publish,
    invitations,
  });
  const authenticator = new Authenticator(orm, tokens, apiKeys, clock, config.auth.cacheTtlMs, invalidation);
  const { liveAccess, streamLimits } = createStreamGuards(config, resources, authenticator, invalidation);
  let keyTimer: Timer | undefined;
  return {
    tokens,
    auth,
    apiKeys,
    members: new MemberService(clock, audit, publish, (em, userId, tenantId) =>
      apiKeys.revokeCreatedBy(em, userId, tenantId),
    ),
    invitations,
    joinTokens: new JoinTokenService(clock, audit),
    audit,
    authenticator,
    rateLimits: new RateLimits(store, clock, config.auth.rateLimits),
    liveAccess,
    streamLimits,
    async start() {
      await invalidation.start();
      // After the caches' handlers (added when they were built): a re-check must not read a stale cache.
      liveAccess.start();
      streamLimits.start();
      apiKeys.start();
      keyTimer = every(scheduler, KEY_REFRESH_MS, () => {
        tokens.refreshKeys().catch((error: unknown) => log.error({ err: error }, 'could not refresh signing keys'));
      });
    },
    async stop() {
      keyTimer?.cancel();
      liveAccess.stop();
      streamLimits.stop();
      await apiKeys.stop();
      await invalidation.stop();
    },
  };
}

/** The token service with its signing keys sealed and loaded; a key this replica cannot open stops the start. */
async function startTokenService(config: Config, resources: Resources, log: Logger): Promise<TokenService> {
  const tokens = new TokenService(
    resources.orm,
    resources.clock,
    {
      accessTokenTtlMs: config.auth.accessTokenTtlMs,
      workerCredentialTtlMs: config.auth.workerCredentialTtlMs,
      keyRotationMs: config.auth.signingKeyRotationMs,
    },
    log,
    new SigningKeyVault(loadSigningKeyEncryptionKeys(config.auth.signingKeyEncryptionKeys, resources.localDir, log)),
  );
  await tokens.start();
  return tokens;
}

/** What long-lived calls are held to: callers re-checked while they live, and concurrent streams capped. */
function createStreamGuards(
  config: Config,
  resources: Resources,
  authenticator: Authenticator,
  invalidation: AuthInvalidation,
): { liveAccess: LiveAccess; streamLimits: StreamLimits } {
  const { store, clock, scheduler, random, logger } = resources;
  const liveAccess = new LiveAccess(
    {
      authenticate: (credential) => authenticator.authenticate(credential),
      invalidation,
      clock,
      scheduler,
      random,
      logger,
    },
    { maxLifetimeMs: config.streams.maxLifetimeMs, recheckIntervalMs: config.streams.recheckIntervalMs },
  );
  return { liveAccess, streamLimits: new StreamLimits(store, clock, scheduler, config.streams, logger) };
}
