import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import { digestsEqual, randomSecret, sha256Hex } from '../identity/secrets.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { JoinToken } from './join-token.entity.js';

const TOKEN_PATTERN = /^sbj_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** Join tokens: how a platform admin lets new agents enrol as workers. */
export class JoinTokenService {
  constructor(
    private readonly clock: Clock,
    private readonly audit: AuditService,
  ) {}

  async create(
    em: EntityManager,
    principal: Principal | undefined,
    input: { description: string; ttlMs: number; maxUses: number },
    origin: RequestOrigin,
  ): Promise<{ joinToken: JoinToken; token: string }> {
    const id = randomBytes(10).toString('hex').slice(0, 16);
    const secret = randomSecret(32);
    const joinToken = await this.register(em, { id, secret, ...input }, { principal, origin }, {});
    return { joinToken, token: `sbj_${id}_${secret}` };
  }

  /**
   * Registers a pre-shared token chosen by the operator (BOOTSTRAP_JOIN_TOKEN)
   * if it is not registered yet: many uses, valid for a year from first start.
   */
  async ensure(em: EntityManager, token: string, origin: RequestOrigin): Promise<void> {
    const match = TOKEN_PATTERN.exec(token);
    if (!match) throw DomainError.invalidArgument('BOOTSTRAP_JOIN_TOKEN', 'not a join token');
    const [, id = '', secret = ''] = match;
    if (await em.findOne(JoinToken, { id })) return;
    await this.register(
      em,
      { id, secret, description: 'BOOTSTRAP_JOIN_TOKEN', ttlMs: 365 * 24 * 3600_000, maxUses: 10_000 },
      { origin },
      { source: 'BOOTSTRAP_JOIN_TOKEN' },
    );
  }

  // Stores a token (its secret only as a hash) and audits it.
  private async register(
    em: EntityManager,
    input: { id: string; secret: string; description: string; ttlMs: number; maxUses: number },
    actor: { principal?: Principal; origin: RequestOrigin },
    details: Record<string, string>,
  ): Promise<JoinToken> {
    const now = this.clock.now();
    const joinToken = em.create(JoinToken, {
      id: input.id,
      secretHash: sha256Hex(input.secret),
      description: input.description,
      createdByUserId: actor.principal?.kind === 'user' ? actor.principal.userId : null,
      createdAt: now,
      expiresAt: new Date(now.getTime() + input.ttlMs),
      maxUses: input.maxUses,
      uses: 0,
    });
    this.audit.record(
      em,
      {
        action: 'join_token.created',
        tenantId: null,
        targetType: 'join_token',
        targetId: input.id,
        details: { maxUses: String(input.maxUses), expiresAt: joinToken.expiresAt.toISOString(), ...details },
      },
      actor,
    );
    await em.flush();
    return joinToken;
  }

  /**
   * Uses the token once, atomically (several agents may race for the last
   * use). Returns its id; refuses with UNAUTHENTICATED when it is unknown,
   * expired or used up.
   */
  async redeem(em: EntityManager, token: string): Promise<string> {
    const refused = new DomainError('UNAUTHENTICATED', 'invalid, expired or used-up join token');
    const match = TOKEN_PATTERN.exec(token);
    if (!match) throw refused;
    const [, id = '', secret = ''] = match;
    const row = await em.findOne(JoinToken, { id }, { disableIdentityMap: true });
    if (!row || !digestsEqual(row.secretHash, sha256Hex(secret))) throw refused;
    // Runs in the caller's transaction: if enrolment fails later, the use is given back.
    const used = await em
      .getConnection()
      .execute<{ id: string }[]>(
        `update "join_token" set "uses" = "uses" + 1 where "id" = ? and "uses" < "max_uses" and "expires_at" > ? returning "id"`,
        [id, this.clock.now().toISOString()],
        'all',
        em.getTransactionContext(),
      );
    if (used.length === 0) throw refused;
    return id;
  }
}
