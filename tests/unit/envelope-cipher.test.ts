import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EnvelopeCipher,
  KeyUnavailableError,
  loadEncryptionKeys,
  type EncryptionKey,
} from '../../src/platform/crypto/envelope-cipher.js';
import { StartupError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { createAuthStateCipher } from '../../src/sessions/auth-state-cipher.js';

const logger = createLogger({ level: 'silent', pretty: false });
const key = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });
const purpose = { variable: 'TEST_KEYS', describe: (aad: string) => `row ${aad}` };
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

describe('envelope cipher', () => {
  it('seals with the first key and still opens blobs sealed with an older one', () => {
    const [k1, k2] = [key('k1'), key('k2')];
    const old = new EnvelopeCipher([k1], purpose).seal('a', Buffer.from('secret'));
    const rotated = new EnvelopeCipher([k2, k1], purpose);
    const fresh = rotated.seal('a', Buffer.from('secret'));
    expect(old.keyId).toBe('k1');
    expect(fresh.keyId).toBe('k2');
    expect(fresh.ciphertext.toString('utf8')).not.toContain('secret');
    expect(text(rotated.open('a', old))).toBe('secret');
    expect(text(rotated.open('a', fresh))).toBe('secret');
  });

  it('does not open a blob moved onto another row', () => {
    const cipher = new EnvelopeCipher([key('k1')], purpose);
    const sealed = cipher.seal('a', Buffer.from('secret'));
    expect(() => cipher.open('b', sealed)).toThrow(KeyUnavailableError);
  });

  it('names the missing key id and the variable, never key material', () => {
    const [k1, k2] = [key('k1'), key('k2')];
    const sealed = new EnvelopeCipher([k1], purpose).seal('a', Buffer.from('secret'));
    const error = catchError(() => new EnvelopeCipher([k2], purpose).open('a', sealed));
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error.message).toBe('row a is sealed with key k1, which TEST_KEYS does not contain (it has k2)');
  });

  it('says replicas disagree when a key id holds different bytes, instead of a bare GCM failure', () => {
    const sealed = new EnvelopeCipher([key('k1')], purpose).seal('a', Buffer.from('secret'));
    const other = key('k1');
    const error = catchError(() => new EnvelopeCipher([other], purpose).open('a', sealed));
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error.message).toMatch(/^row a does not decrypt with key k1: every replica needs the same TEST_KEYS/);
    expect(error.message).not.toContain(other.key.toString('base64'));
  });

  it('refuses keys that are not 32 bytes, duplicate ids and ids that could not be stored', () => {
    expect(() => new EnvelopeCipher([], purpose)).toThrow('at least one key');
    expect(() => new EnvelopeCipher([{ id: 'k1', key: randomBytes(16) }], purpose)).toThrow('32 bytes');
    expect(() => new EnvelopeCipher([key('k1'), key('k1')], purpose)).toThrow('appears twice');
    expect(() => new EnvelopeCipher([key('k 1')], purpose)).toThrow('key id');
  });

  it('opens session auth states sealed by earlier versions (AES-256-GCM, the session id as additional data)', () => {
    const k1 = key('k1');
    const iv = randomBytes(12);
    const earlier = createCipheriv('aes-256-gcm', k1.key, iv);
    earlier.setAAD(Buffer.from('session-1'));
    const ciphertext = Buffer.concat([earlier.update('creds'), earlier.final()]);
    const sealed = { keyId: 'k1', iv, ciphertext, tag: earlier.getAuthTag() };
    const cipher = createAuthStateCipher([k1]);
    expect(text(cipher.open('session-1', sealed))).toBe('creds');
    expect(() => cipher.open('session-2', sealed)).toThrow("session session-2's auth state does not decrypt");
  });
});

describe('developer key file', () => {
  const dirs: string[] = [];
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-keys-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const local = (dir: string) => ({ dataDir: dir, file: 'test.key', variable: 'TEST_KEYS', protects: 'tests' });

  it('uses the configured keys when there are any, and writes nothing', () => {
    const dir = dataDir();
    const configured = [key('k1')];
    expect(loadEncryptionKeys(configured, local(dir), logger)).toBe(configured);
    expect(() => statSync(join(dir, 'test.key'))).toThrow();
  });

  it('generates a key once, readable only by its owner, and reuses it on later starts', () => {
    const dir = join(dataDir(), 'nested');
    const [first] = loadEncryptionKeys(undefined, local(dir), logger);
    const [again] = loadEncryptionKeys(undefined, local(dir), logger);
    expect(first?.key).toHaveLength(32);
    expect(again).toEqual(first);
    expect(first?.id).toMatch(/^local-[0-9a-f]{8}$/);
    expect(statSync(join(dir, 'test.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'test.key'), 'utf8')).toBe(first?.key.toString('base64'));
  });

  it('refuses to start on a damaged key file instead of inventing a new key', () => {
    const dir = dataDir();
    writeFileSync(join(dir, 'test.key'), 'not a key');
    expect(() => loadEncryptionKeys(undefined, local(dir), logger)).toThrow(StartupError);
    expect(readFileSync(join(dir, 'test.key'), 'utf8')).toBe('not a key');
  });
});

function catchError(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    if (error instanceof Error) return error;
  }
  throw new Error('expected an error');
}
