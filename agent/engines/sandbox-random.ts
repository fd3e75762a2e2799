import { createHash, createHmac, randomBytes } from 'node:crypto';

/** Where a sandbox session's randomness comes from (keys, QR refs, codes, message ids). */
export interface RandomSource {
  bytes(length: number): Buffer;
}

export const cryptoRandom: RandomSource = { bytes: (length) => randomBytes(length) };

/**
 * A deterministic byte stream: HMAC-SHA256(key, counter) blocks. Not for
 * secrets; it exists so that a seeded sandbox replays exactly.
 */
export class SeededRandom implements RandomSource {
  private counter = 0n;
  private buffered = Buffer.alloc(0);

  constructor(private readonly key: Buffer) {}

  bytes(length: number): Buffer {
    while (this.buffered.length < length) {
      const block = Buffer.alloc(8);
      block.writeBigUInt64BE(this.counter++);
      this.buffered = Buffer.concat([this.buffered, createHmac('sha256', this.key).update(block).digest()]);
    }
    const out = this.buffered.subarray(0, length);
    this.buffered = this.buffered.subarray(length);
    return Buffer.from(out);
  }
}

/**
 * One session's stream under an engine seed. It depends on the session id,
 * on how many times this engine opened that id before, and on the auth
 * state the session starts from, so sessions never share a stream (ids stay
 * unique across sessions) while the same calls with the same seed replay
 * the same keys, codes and ids.
 */
export function sessionRandom(
  seed: string,
  sessionId: string,
  ordinal: number,
  authState: Uint8Array | null,
): RandomSource {
  const origin = authState === null ? 'fresh' : createHash('sha256').update(authState).digest('hex');
  const key = createHmac('sha256', seed)
    .update(JSON.stringify(['switchboard.sandbox', sessionId, ordinal, origin]))
    .digest();
  return new SeededRandom(key);
}
