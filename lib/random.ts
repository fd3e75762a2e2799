/**
 * Where jitter comes from: uniform in [0, 1). Injected like the clock, so a
 * test that depends on a jittered delay can pin it. (Identifiers and secrets
 * use node:crypto directly: they must never be predictable.)
 */
export type Random = () => number;

export const systemRandom: Random = Math.random;

/** A repeatable sequence (mulberry32) for tests and seeded benchmarks; not for anything secret. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
