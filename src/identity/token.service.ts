import { randomBytes } from 'node:crypto';
import {
  SignJWT,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  decodeProtectedHeader,
} from 'jose';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../lib/clock.js';
import { KeyUnavailableError } from '../platform/crypto/envelope-cipher.js';
import { DomainError, StartupError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { SigningKey } from './signing-key.entity.js';
import type { SigningKeyVault } from './signing-key-vault.js';

const ALGORITHM = 'ES256';
const ISSUER = 'switchboard';
/** Tenant and admin API calls. */
const API_AUDIENCE = 'switchboard-api';
/** Worker streams only: a worker credential never opens the API and vice versa. */
const WORKER_AUDIENCE = 'switchboard-worker';

/** Lifetimes and rotation, compiled from configuration. */
export interface TokenOptions {
  accessTokenTtlMs: number;
  workerCredentialTtlMs: number;
  /** A signing key signs for this long, then a new one takes over. */
  keyRotationMs: number;
}

/** Claims of an access token as the API trusts them. */
export interface AccessClaims {
  userId: string;
  tenantId: string | null;
  sessionId: string;
}

/** Access claims as verified, with the token's expiry (for calls that outlive one request). */
export interface VerifiedAccessClaims extends AccessClaims {
  expiresAt: Date;
}

/** Claims of a worker credential. */
export interface WorkerClaims {
  workerId: string;
  generation: number;
}

interface LoadedKey {
  kid: string;
  signUntil: Date;
  verifyUntil: Date;
  publicJwk: JWK;
  publicKey: CryptoKey | Uint8Array;
}

/**
 * Signs and verifies JWTs with ES256 keys kept in PostgreSQL, shared by every
 * replica, their private halves sealed by the vault. Keys rotate by age; a
 * retired key keeps verifying until every token it signed has expired, so
 * rotation logs nobody out.
 */
export class TokenService {
  private keys = new Map<string, LoadedKey>();
  private signing: { kid: string; key: CryptoKey | Uint8Array; signUntil: Date } | undefined;
  private lastReloadMs = -Infinity;

  constructor(
    private readonly orm: MikroORM,
    private readonly clock: Clock,
    private readonly options: TokenOptions,
    private readonly log: Logger,
    private readonly vault: SigningKeyVault,
  ) {}

  /**
   * At start: seals private keys an earlier version left in plaintext,
   * re-encrypts those under an older key-encryption key, then loads keys.
   * A key this replica cannot open stops the start, naming the key ids.
   */
  async start(): Promise<void> {
    try {
      const report = await this.vault.sealAll(this.orm.em.fork());
      if (report.plaintextSealed.length > 0) {
        this.log.info(
          { kids: report.plaintextSealed },
          'sealed signing keys stored in plaintext by an earlier version',
        );
      }
      for (const [from, kids] of report.reencrypted) {
        this.log.info({ kids, from, to: this.vault.currentKekId }, 're-encrypted signing keys');
      }
      await this.refreshKeys();
    } catch (error) {
      if (error instanceof KeyUnavailableError) throw new StartupError(error.message, { cause: error });
      throw error;
    }
  }

  /** Loads keys, creating or rotating the signing key when needed. Call at start and periodically. */
  async refreshKeys(): Promise<void> {
    const em = this.orm.em.fork();
    const now = this.clock.now();
    let current = await em.findOne(SigningKey, { signUntil: { $gt: now } }, { orderBy: { createdAt: 'desc' } });
    if (!current) current = await this.createKey(now);
    const valid = await em.find(SigningKey, { verifyUntil: { $gt: now } });
    const next = new Map<string, LoadedKey>();
    for (const key of valid) {
      next.set(key.kid, {
        kid: key.kid,
        signUntil: key.signUntil,
        verifyUntil: key.verifyUntil,
        publicJwk: key.publicJwk,
        publicKey: this.keys.get(key.kid)?.publicKey ?? (await importJWK(key.publicJwk, ALGORITHM)),
      });
    }
    this.keys = next;
    if (this.signing?.kid !== current.kid) {
      this.signing = {
        kid: current.kid,
        key: await importJWK(await this.vault.open(em, current.kid), ALGORITHM),
        signUntil: current.signUntil,
      };
    }
    this.lastReloadMs = this.clock.monotonicMs();
  }

  /** Public keys for /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return {
      keys: [...this.keys.values()].map((key) => ({ ...key.publicJwk, kid: key.kid, alg: ALGORITHM, use: 'sig' })),
    };
  }

  async issueAccessToken(claims: AccessClaims): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(this.clock.now().getTime() + this.options.accessTokenTtlMs);
    const token = await this.sign(
      { tid: claims.tenantId ?? undefined, sid: claims.sessionId },
      { subject: claims.userId, audience: API_AUDIENCE, expiresAt },
    );
    return { token, expiresAt };
  }

  async verifyAccessToken(token: string): Promise<VerifiedAccessClaims> {
    const payload = await this.verify(token, API_AUDIENCE);
    if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || typeof payload.exp !== 'number') {
      throw new DomainError('UNAUTHENTICATED', 'malformed access token');
    }
    return {
      userId: payload.sub,
      tenantId: typeof payload.tid === 'string' ? payload.tid : null,
      sessionId: payload.sid,
      expiresAt: new Date(payload.exp * 1000),
    };
  }

  async issueWorkerCredential(claims: WorkerClaims): Promise<string> {
    const expiresAt = new Date(this.clock.now().getTime() + this.options.workerCredentialTtlMs);
    return this.sign({ gen: claims.generation }, { subject: claims.workerId, audience: WORKER_AUDIENCE, expiresAt });
  }

  async verifyWorkerCredential(token: string): Promise<WorkerClaims> {
    const payload = await this.verify(token, WORKER_AUDIENCE);
    if (typeof payload.sub !== 'string' || typeof payload.gen !== 'number') {
      throw new DomainError('UNAUTHENTICATED', 'malformed worker credential');
    }
    return { workerId: payload.sub, generation: payload.gen };
  }

  private async sign(
    claims: JWTPayload,
    options: { subject: string; audience: string; expiresAt: Date },
  ): Promise<string> {
    if (!this.signing || this.signing.signUntil <= this.clock.now()) await this.refreshKeys();
    const signing = this.signing;
    if (!signing) throw new Error('no signing key');
    const now = this.clock.now();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ALGORITHM, kid: signing.kid, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(options.audience)
      .setSubject(options.subject)
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(options.expiresAt.getTime() / 1000))
      .setJti(randomBytes(9).toString('base64url'))
      .sign(signing.key);
  }

  private async verify(token: string, audience: string): Promise<JWTPayload> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new DomainError('UNAUTHENTICATED', 'malformed token');
    }
    let key = kid ? this.keys.get(kid) : undefined;
    // A key created by another replica moments ago: reload, at most once a second.
    if (!key && kid && this.clock.monotonicMs() - this.lastReloadMs > 1000) {
      await this.refreshKeys();
      key = this.keys.get(kid);
    }
    if (!key) throw new DomainError('UNAUTHENTICATED', 'token signed by an unknown key');
    try {
      const { payload } = await jwtVerify(token, key.publicKey, {
        issuer: ISSUER,
        audience,
        algorithms: [ALGORITHM],
        currentDate: this.clock.now(),
      });
      return payload;
    } catch (error) {
      const expired = error instanceof Error && 'code' in error && error.code === 'ERR_JWT_EXPIRED';
      throw new DomainError('UNAUTHENTICATED', expired ? 'token expired' : 'invalid token');
    }
  }

  private async createKey(now: Date): Promise<SigningKey> {
    const { publicKey, privateKey } = await generateKeyPair(ALGORITHM, { extractable: true });
    const em = this.orm.em.fork();
    const signUntil = new Date(now.getTime() + this.options.keyRotationMs);
    const longestToken = Math.max(this.options.accessTokenTtlMs, this.options.workerCredentialTtlMs);
    const kid = `${now.toISOString().slice(0, 10)}-${randomBytes(6).toString('hex')}`;
    const key = em.create(SigningKey, {
      kid,
      algorithm: ALGORITHM,
      publicJwk: await exportJWK(publicKey),
      ...this.vault.seal(kid, await exportJWK(privateKey)),
      legacyPrivateJwk: null,
      createdAt: now,
      signUntil,
      verifyUntil: new Date(signUntil.getTime() + longestToken),
    });
    await em.flush();
    this.log.info({ kid: key.kid, signUntil }, 'created token signing key');
    return key;
  }
}
