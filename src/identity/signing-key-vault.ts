import type { JWK } from 'jose';
import type { EntityManager } from '@mikro-orm/postgresql';
import {
  EnvelopeCipher,
  KeyUnavailableError,
  loadEncryptionKeys,
  type EncryptionKey,
} from '../platform/crypto/envelope-cipher.js';
import type { Logger } from '../../lib/logger.js';
import { SigningKey } from './signing-key.entity.js';

export const SIGNING_KEY_ENCRYPTION_KEYS = 'SIGNING_KEY_ENCRYPTION_KEYS';

const AAD_PREFIX = 'signing_key:';
const SECRET_COLUMNS = ['privateKeyCiphertext', 'legacyPrivateJwk'] as const;

/** What sealAll() changed. */
export interface SealReport {
  /** Keys found in plaintext (written by an earlier version) and sealed. */
  plaintextSealed: string[];
  /** Keys re-encrypted under the newest key-encryption key, by the key-encryption key they were under. */
  reencrypted: Map<string, string[]>;
}

/** How many signing keys each key-encryption key seals, and how many are still plaintext. */
export interface SigningKeyCensus {
  byKekId: Map<string, number>;
  plaintext: number;
}

/** SIGNING_KEY_ENCRYPTION_KEYS, or in developer setups a key kept in the data folder. */
export function loadSigningKeyEncryptionKeys(
  configured: EncryptionKey[] | undefined,
  dataDir: string,
  logger: Logger,
): EncryptionKey[] {
  return loadEncryptionKeys(
    configured,
    {
      dataDir,
      file: 'signing-key-encryption.key',
      variable: SIGNING_KEY_ENCRYPTION_KEYS,
      protects: 'token signing keys',
    },
    logger,
  );
}

/**
 * Seals signing keys' private halves with key-encryption keys from
 * configuration, so reading the database (a backup, a replica, a dump) is not
 * enough to mint tokens. The kid is the additional data: a sealed key moved
 * onto another row does not open.
 */
export class SigningKeyVault {
  private readonly cipher: EnvelopeCipher;

  constructor(keys: readonly EncryptionKey[]) {
    this.cipher = new EnvelopeCipher(keys, {
      variable: SIGNING_KEY_ENCRYPTION_KEYS,
      describe: (aad) => `signing key ${aad.slice(AAD_PREFIX.length)}`,
    });
  }

  /** The key-encryption key new keys are sealed with. */
  get currentKekId(): string {
    return this.cipher.currentKeyId;
  }

  /** Configured key-encryption key ids, newest first. */
  get kekIds(): string[] {
    return this.cipher.keyIds;
  }

  /** The columns that store a new key's private half. */
  seal(
    kid: string,
    privateJwk: JWK,
  ): Pick<SigningKey, 'privateKeyKekId' | 'privateKeyIv' | 'privateKeyCiphertext' | 'privateKeyTag'> {
    const sealed = this.cipher.seal(AAD_PREFIX + kid, Buffer.from(JSON.stringify(privateJwk)));
    return {
      privateKeyKekId: sealed.keyId,
      privateKeyIv: sealed.iv,
      privateKeyCiphertext: sealed.ciphertext,
      privateKeyTag: sealed.tag,
    };
  }

  /**
   * A key's private JWK, for signing. Plaintext left by an earlier version
   * (a replica of it may still run during an upgrade) is sealed on the way.
   */
  async open(em: EntityManager, kid: string): Promise<JWK> {
    const key = await em.findOneOrFail(SigningKey, { kid }, { populate: SECRET_COLUMNS, refresh: true });
    if (key.legacyPrivateJwk) {
      await this.sealPlaintext(em, key.kid, key.legacyPrivateJwk);
      return key.legacyPrivateJwk;
    }
    return this.openSealed(key);
  }

  /**
   * Seals every plaintext private key and re-encrypts every one not under
   * the newest key-encryption key, so older ones can then be removed. Opens
   * every key first and changes nothing if one cannot be opened: the
   * KeyUnavailableError names the keys and key-encryption key ids.
   */
  async sealAll(em: EntityManager): Promise<SealReport> {
    const report: SealReport = { plaintextSealed: [], reencrypted: new Map() };
    for (const { key, jwk } of await this.openAll(em)) {
      if (key.legacyPrivateJwk) {
        if (await this.sealPlaintext(em, key.kid, jwk)) report.plaintextSealed.push(key.kid);
        continue;
      }
      // Only if no other replica re-sealed it meanwhile (each seal has a fresh iv).
      const changed = await em.nativeUpdate(
        SigningKey,
        { kid: key.kid, privateKeyIv: key.privateKeyIv },
        this.seal(key.kid, jwk),
      );
      if (changed > 0) group(report.reencrypted, key.privateKeyKekId ?? '', key.kid);
    }
    return report;
  }

  /** What sealAll() checks before it writes: throws the same KeyUnavailableError, changes nothing. */
  async checkAll(em: EntityManager): Promise<void> {
    await this.openAll(em);
  }

  /** Opens every stored key; returns those sealAll() must write, or refuses naming every key it cannot open. */
  private async openAll(em: EntityManager): Promise<{ key: SigningKey; jwk: JWK }[]> {
    const keys = await em.find(SigningKey, {}, { populate: SECRET_COLUMNS, orderBy: { createdAt: 'asc' } });
    const missing = new Map<string, string[]>();
    const undecryptable = new Map<string, string[]>();
    const work: { key: SigningKey; jwk: JWK }[] = [];
    for (const key of keys) {
      if (key.legacyPrivateJwk) {
        work.push({ key, jwk: key.legacyPrivateJwk });
        continue;
      }
      const kekId = key.privateKeyKekId;
      if (kekId === null) continue; // no private half: nothing to protect
      if (!this.cipher.has(kekId)) {
        group(missing, kekId, key.kid);
        continue;
      }
      try {
        const jwk = this.openSealed(key);
        if (kekId !== this.currentKekId) work.push({ key, jwk });
      } catch (error) {
        if (!(error instanceof KeyUnavailableError)) throw error;
        group(undecryptable, kekId, key.kid);
      }
    }
    if (missing.size > 0 || undecryptable.size > 0) throw this.refusal(missing, undecryptable);
    return work;
  }

  async census(em: EntityManager): Promise<SigningKeyCensus> {
    const rows = await em.getConnection().execute<{ kek_id: string | null; plaintext: boolean; n: string }[]>(
      `select "private_key_kek_id" as kek_id, "private_jwk" is not null as plaintext, count(*) as n
           from "signing_key" group by 1, 2`,
    );
    const census: SigningKeyCensus = { byKekId: new Map(), plaintext: 0 };
    for (const row of rows) {
      if (row.plaintext) census.plaintext += Number(row.n);
      else if (row.kek_id !== null) census.byKekId.set(row.kek_id, Number(row.n));
    }
    return census;
  }

  private openSealed(key: SigningKey): JWK {
    const { privateKeyKekId: keyId, privateKeyIv: iv, privateKeyCiphertext: ciphertext, privateKeyTag: tag } = key;
    if (keyId === null || iv === null || ciphertext === null || tag === null) {
      throw new KeyUnavailableError(`signing key ${key.kid} has no private key stored`);
    }
    const plaintext = this.cipher.open(AAD_PREFIX + key.kid, { keyId, iv, ciphertext, tag });
    return JSON.parse(plaintext.toString('utf8')) as JWK;
  }

  /** Seals a plaintext row in one statement, so no moment has both or neither; false if another replica did. */
  private async sealPlaintext(em: EntityManager, kid: string, jwk: JWK): Promise<boolean> {
    const changed = await em.nativeUpdate(
      SigningKey,
      { kid, legacyPrivateJwk: { $ne: null } },
      { ...this.seal(kid, jwk), legacyPrivateJwk: null },
    );
    return changed > 0;
  }

  private refusal(missing: Map<string, string[]>, undecryptable: Map<string, string[]>): KeyUnavailableError {
    const problems = [
      ...[...missing].map(
        ([kekId, kids]) =>
          `signing key${plural(kids)} ${kids.join(', ')} ${kids.length === 1 ? 'is' : 'are'} sealed with key ${kekId}, ` +
          `which ${SIGNING_KEY_ENCRYPTION_KEYS} does not contain (it has ${this.kekIds.join(', ')})`,
      ),
      ...[...undecryptable].map(
        ([kekId, kids]) =>
          `signing key${plural(kids)} ${kids.join(', ')} ${kids.length === 1 ? 'does' : 'do'} not decrypt with key ${kekId}: ` +
          `this replica's ${kekId} differs from the one that sealed ${kids.length === 1 ? 'it' : 'them'}, or the rows were altered`,
      ),
    ];
    return new KeyUnavailableError(
      `${problems.join('; ')}. Every replica needs the same ${SIGNING_KEY_ENCRYPTION_KEYS}, ` +
        'and a key may only be removed once nothing is sealed with it (npm run keys:rotate; docs/keys.md)',
    );
  }
}

function group<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

const plural = (items: readonly unknown[]) => (items.length === 1 ? '' : 's');
