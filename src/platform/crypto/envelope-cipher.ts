import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StartupError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';

/** One encryption key; its id is stored with every blob it sealed, so keys can rotate. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

/** A blob as stored: AES-256-GCM ciphertext with its nonce, tag and the id of the key that sealed it. */
export interface SealedBlob {
  keyId: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * A stored secret that this process cannot open: its key is not configured,
 * or differs from the one that sealed it. An operator's problem, not a
 * caller's, so it is not a DomainError: callers get a bare INTERNAL, the
 * log gets this message (key ids and the variable, never key material).
 */
export class KeyUnavailableError extends Error {
  override readonly name = 'KeyUnavailableError';
}

/** What one cipher protects, so its errors tell an operator which variable to fix. */
export interface CipherPurpose {
  /** The environment variable the keys come from. */
  variable: string;
  /** Names the blob from its additional data, e.g. `session 42's auth state`. */
  describe: (aad: string) => string;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Encrypts secrets at rest with AES-256-GCM. The caller's additional data
 * (a row's id) is authenticated, so a blob copied onto another row does not
 * open. New blobs use the first key; older ones open with whichever key
 * their id names, so keys rotate by putting a new one first. Errors name key
 * ids and the variable, never key material.
 */
export class EnvelopeCipher {
  private readonly byId: ReadonlyMap<string, Buffer>;
  private readonly current: EncryptionKey;

  constructor(
    keys: readonly EncryptionKey[],
    private readonly purpose: CipherPurpose,
  ) {
    const [first] = keys;
    if (!first) throw new Error(`${purpose.variable}: at least one key is needed`);
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id))
        throw new Error(`${purpose.variable}: key id ${JSON.stringify(id)} is not 1-32 of A-Z a-z 0-9 _ -`);
      if (key.length !== 32) throw new Error(`${purpose.variable}: key ${id} must be 32 bytes`);
    }
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
    if (this.byId.size !== keys.length) throw new Error(`${purpose.variable}: a key id appears twice`);
    this.current = first;
  }

  /** The key new blobs are sealed with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  /** Configured key ids, newest first. */
  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  get variable(): string {
    return this.purpose.variable;
  }

  has(keyId: string): boolean {
    return this.byId.has(keyId);
  }

  seal(aad: string, plaintext: Uint8Array): SealedBlob {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(aad));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { keyId: this.current.id, iv, ciphertext, tag: cipher.getAuthTag() };
  }

  open(aad: string, sealed: SealedBlob): Buffer {
    const { variable, describe } = this.purpose;
    const key = this.byId.get(sealed.keyId);
    if (!key) {
      throw new KeyUnavailableError(
        `${describe(aad)} is sealed with key ${sealed.keyId}, which ${variable} does not contain ` +
          `(it has ${this.keyIds.join(', ')})`,
      );
    }
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv);
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(sealed.tag);
    try {
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
    } catch (cause) {
      // Same id, different bytes is the usual cause: replicas configured apart.
      throw new KeyUnavailableError(
        `${describe(aad)} does not decrypt with key ${sealed.keyId}: every replica needs the same ${variable} ` +
          `(this one's ${sealed.keyId} differs from the one that sealed it, or the stored data was altered)`,
        { cause },
      );
    }
  }
}

/** Where the developer setup keeps a generated key when the variable is unset. */
export interface LocalKeyFile {
  dataDir: string;
  /** File name inside dataDir. */
  file: string;
  variable: string;
  /** What the key encrypts, for the warning. */
  protects: string;
}

/**
 * The keys to use: the configured ones, or (developer setups only, refused
 * in production by config) a key generated once and kept in the data folder.
 */
export function loadEncryptionKeys(
  configured: EncryptionKey[] | undefined,
  local: LocalKeyFile,
  logger: Logger,
): EncryptionKey[] {
  if (configured) return configured;
  const file = join(local.dataDir, local.file);
  if (!existsSync(file)) createKeyFile(file);
  logger.warn(
    { file },
    `${local.variable} is not set: ${local.protects} are encrypted with a key kept next to the data (development only)`,
  );
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) {
    throw new StartupError(`${file} does not hold a 32-byte base64 key: restore it, or set ${local.variable}`);
  }
  // Named after the key itself, so two replicas with different local keys say so in their errors.
  return [{ id: `local-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`, key }];
}

// Written aside and linked into place, so a process starting at the same
// moment sees either no file or the whole key, and only one key wins.
function createKeyFile(file: string): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(draft, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  try {
    linkSync(draft, file);
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
  } finally {
    unlinkSync(draft);
  }
}
