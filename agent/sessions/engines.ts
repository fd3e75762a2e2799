import { createBaileysEngine } from '../engines/baileys.engine.js';
import type { Engine, EngineKind } from '../engines/engine.js';
import { createSandboxEngine } from '../engines/sandbox.engine.js';

/**
 * Builds the engine of one kind. Injectable so in-process tests can give
 * their agents a fake clock, or one SandboxNetwork shared by several agents.
 */
export type EngineFactory = (kind: EngineKind) => Engine;

/** Production defaults: the sandbox on real timers with its own network, Baileys on the real WhatsApp. */
export const defaultEngineFactory: EngineFactory = (kind) => {
  switch (kind) {
    case 'SANDBOX':
      return createSandboxEngine();
    case 'BAILEYS':
      return createBaileysEngine();
    default:
      return kind satisfies never;
  }
};

/**
 * One engine per offered kind, built once per agent: every session of a kind
 * shares it (so sandbox sessions of one agent are on one simulated network).
 */
export function createEngines(kinds: readonly EngineKind[], factory: EngineFactory): Map<EngineKind, Engine> {
  const engines = new Map<EngineKind, Engine>();
  for (const kind of kinds) {
    if (engines.has(kind)) continue;
    const engine = factory(kind);
    if (engine.kind !== kind) throw new Error(`the engine factory built a ${engine.kind} engine for ${kind}`);
    engines.set(kind, engine);
  }
  return engines;
}
