import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { EngineError } from './engine-error.js';
import type { RandomSource } from './sandbox-random.js';

/** Identifies the sandbox's auth states among other engines' (a Baileys state is not one). */
export const SANDBOX_AUTH_FORMAT = 'switchboard.sandbox.auth';
/** Bumped when the layout changes; a state of another version is refused, never guessed at. */
export const SANDBOX_AUTH_VERSION = 1;

/** Raw 32-byte keys, as WhatsApp puts them on the wire. */
export interface RawKeyPair {
  private: Buffer;
  public: Buffer;
}

/**
 * A companion device's own keys, made before pairing (the QR code carries
 * the public halves) the way WhatsApp Web makes them: a Noise static key
 * (X25519), an identity key, a signed pre-key and an ADV secret. The
 * identity key is Ed25519 here (Signal uses XEdDSA over Curve25519, which
 * node:crypto lacks) so that it can sign the pre-key with node:crypto alone.
 */
export interface SandboxDeviceKeys {
  noiseKey: RawKeyPair;
  identityKey: RawKeyPair;
  signedPreKey: { keyId: number; keyPair: RawKeyPair; signature: Buffer };
  /** Signal registration id: 14 bits, never 0. */
  registrationId: number;
  advSecretKey: Buffer;
}

/** The WhatsApp account a device was linked to, and as which device. */
export interface SandboxAccount {
  /** 15551234567@s.whatsapp.net */
  jid: string;
  /** The device's own JID: 15551234567:2@s.whatsapp.net */
  deviceJid: string;
  phoneNumber: string;
  pushName: string;
  linkedAt: Date;
}

/** Everything a sandbox session needs to resume without a new scan, on any worker. */
export interface SandboxAuthState {
  device: SandboxDeviceKeys;
  account: SandboxAccount;
}

// PKCS#8 DER headers for a raw 32-byte private key; node:crypto imports raw
// private keys only this way (JWK would need the public half too).
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

function privateKey(kind: 'x25519' | 'ed25519', raw: Buffer): KeyObject {
  const header = kind === 'x25519' ? X25519_PKCS8 : ED25519_PKCS8;
  return createPrivateKey({ key: Buffer.concat([header, raw]), format: 'der', type: 'pkcs8' });
}

function publicOf(kind: 'x25519' | 'ed25519', raw: Buffer): Buffer {
  const jwk = createPublicKey(privateKey(kind, raw)).export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url');
}

function keyPair(kind: 'x25519' | 'ed25519', random: RandomSource): RawKeyPair {
  const raw = random.bytes(32);
  return { private: raw, public: publicOf(kind, raw) };
}

/** Fresh device keys; deterministic when `random` is seeded. */
export function createDeviceKeys(random: RandomSource): SandboxDeviceKeys {
  const noiseKey = keyPair('x25519', random);
  const identityKey = keyPair('ed25519', random);
  const preKey = keyPair('x25519', random);
  const signature = sign(null, signedPreKeyMessage(preKey.public), privateKey('ed25519', identityKey.private));
  const registrationId = random.bytes(2).readUInt16BE(0) & 0x3fff || 1;
  return {
    noiseKey,
    identityKey,
    signedPreKey: { keyId: 1, keyPair: preKey, signature },
    registrationId,
    advSecretKey: random.bytes(32),
  };
}

/** What the identity key signs: Signal's key-type byte (5, Curve25519) followed by the pre-key. */
function signedPreKeyMessage(publicKey: Buffer): Buffer {
  return Buffer.concat([Buffer.from([5]), publicKey]);
}

/** The key the sandbox network knows a device by. */
export function deviceKeyId(device: SandboxDeviceKeys): string {
  return device.identityKey.public.toString('base64');
}

const key32 = z
  .base64()
  .refine((text) => Buffer.from(text, 'base64').length === 32, { message: 'expected 32 bytes, base64' });
const keyPairSchema = z.object({ private: key32, public: key32 });
const stateSchema = z.object({
  format: z.literal(SANDBOX_AUTH_FORMAT),
  version: z.literal(SANDBOX_AUTH_VERSION),
  device: z.object({
    noiseKey: keyPairSchema,
    identityKey: keyPairSchema,
    signedPreKey: z.object({ keyId: z.int().min(1), private: key32, public: key32, signature: z.base64() }),
    registrationId: z.int().min(1).max(0x3fff),
    advSecretKey: key32,
  }),
  account: z.object({
    jid: z.string().regex(/^[1-9]\d{6,14}@s\.whatsapp\.net$/),
    deviceJid: z.string().regex(/^[1-9]\d{6,14}:\d+@s\.whatsapp\.net$/),
    phoneNumber: z.string().regex(/^[1-9]\d{6,14}$/),
    pushName: z.string(),
    linkedAt: z.iso.datetime(),
  }),
});
type StoredState = z.infer<typeof stateSchema>;

const b64 = (bytes: Buffer) => bytes.toString('base64');
const bytes = (text: string) => Buffer.from(text, 'base64');

/** Serialises the state as versioned JSON (UTF-8); key order is fixed, so equal states give equal bytes. */
export function encodeAuthState(state: SandboxAuthState): Uint8Array {
  const { device, account } = state;
  const stored: StoredState = {
    format: SANDBOX_AUTH_FORMAT,
    version: SANDBOX_AUTH_VERSION,
    device: {
      noiseKey: { private: b64(device.noiseKey.private), public: b64(device.noiseKey.public) },
      identityKey: { private: b64(device.identityKey.private), public: b64(device.identityKey.public) },
      signedPreKey: {
        keyId: device.signedPreKey.keyId,
        private: b64(device.signedPreKey.keyPair.private),
        public: b64(device.signedPreKey.keyPair.public),
        signature: b64(device.signedPreKey.signature),
      },
      registrationId: device.registrationId,
      advSecretKey: b64(device.advSecretKey),
    },
    account: {
      jid: account.jid,
      deviceJid: account.deviceJid,
      phoneNumber: account.phoneNumber,
      pushName: account.pushName,
      linkedAt: account.linkedAt.toISOString(),
    },
  };
  return new TextEncoder().encode(JSON.stringify(stored));
}

/**
 * Reads a checkpointed state back, or throws EngineError INVALID_AUTH_STATE
 * saying why: not UTF-8 JSON, another engine's format, a version this code
 * does not know, a malformed field, or keys that do not belong together
 * (a public key that is not its private key's, a pre-key signature that does
 * not verify), which is what a state corrupted in storage looks like.
 */
export function decodeAuthState(data: Uint8Array): SandboxAuthState {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch (error) {
    throw new EngineError('INVALID_AUTH_STATE', 'the auth state is not UTF-8 JSON', { cause: error });
  }
  const header = z.object({ format: z.string(), version: z.unknown() }).safeParse(json);
  if (!header.success || header.data.format !== SANDBOX_AUTH_FORMAT) {
    throw new EngineError(
      'INVALID_AUTH_STATE',
      `the auth state is not a sandbox auth state (format ${SANDBOX_AUTH_FORMAT})`,
    );
  }
  if (header.data.version !== SANDBOX_AUTH_VERSION) {
    throw new EngineError(
      'INVALID_AUTH_STATE',
      `the auth state has version ${JSON.stringify(header.data.version)}; this engine reads version ${SANDBOX_AUTH_VERSION}`,
    );
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new EngineError('INVALID_AUTH_STATE', `the auth state is malformed: ${problems.join('; ')}`);
  }
  const { device, account } = parsed.data;
  const state: SandboxAuthState = {
    device: {
      noiseKey: { private: bytes(device.noiseKey.private), public: bytes(device.noiseKey.public) },
      identityKey: { private: bytes(device.identityKey.private), public: bytes(device.identityKey.public) },
      signedPreKey: {
        keyId: device.signedPreKey.keyId,
        keyPair: { private: bytes(device.signedPreKey.private), public: bytes(device.signedPreKey.public) },
        signature: bytes(device.signedPreKey.signature),
      },
      registrationId: device.registrationId,
      advSecretKey: bytes(device.advSecretKey),
    },
    account: { ...account, linkedAt: new Date(account.linkedAt) },
  };
  assertKeysBelongTogether(state.device);
  return state;
}

function assertKeysBelongTogether(device: SandboxDeviceKeys): void {
  const pairs: ['x25519' | 'ed25519', RawKeyPair, string][] = [
    ['x25519', device.noiseKey, 'noiseKey'],
    ['ed25519', device.identityKey, 'identityKey'],
    ['x25519', device.signedPreKey.keyPair, 'signedPreKey'],
  ];
  for (const [kind, pair, name] of pairs) {
    if (!publicOf(kind, pair.private).equals(pair.public)) {
      throw new EngineError('INVALID_AUTH_STATE', `the auth state is corrupt: ${name}.public is not its private key's`);
    }
  }
  const identity = createPublicKey(privateKey('ed25519', device.identityKey.private));
  if (!verify(null, signedPreKeyMessage(device.signedPreKey.keyPair.public), identity, device.signedPreKey.signature)) {
    throw new EngineError(
      'INVALID_AUTH_STATE',
      'the auth state is corrupt: the signed pre-key signature does not verify',
    );
  }
}
