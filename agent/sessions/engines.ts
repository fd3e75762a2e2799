import type { Clock } from '../../lib/clock.js';
import type { Scheduler } from '../../lib/timers.js';
import { createBaileysEngine } from '../engines/baileys.engine.js';
import type { Engine, EngineKind } from '../engines/engine.js';
import { SandboxNetwork } from '../engines/sandbox-network.js';
import { SandboxSendLog } from '../engines/sandbox-send-log.js';
import { createSandboxEngine } from '../engines/sandbox.engine.js';

/** The agent's clock and scheduler, handed to the engines it builds so they keep the agent's time. */
export interface EngineTime {
  clock: Clock;
  scheduler: Scheduler;
}

/**
 * Builds the engine of one kind. Injectable so in-process tests can give
 * their agents fake engines, or one SandboxNetwork shared by several agents.
 */
export type EngineFactory = (kind: EngineKind, time: EngineTime) => Engine;

/** What the production engines are configured with (agent/config.ts). */
export interface EngineSettings {
  /** File the sandbox network logs sends to and dedupes against, shared across processes. */
  sandboxSendLog?: string;
}

/** Production defaults: the sandbox with its own network, Baileys on the real WhatsApp; both on the agent's time. */
export const defaultEngineFactory: EngineFactory = createDefaultEngineFactory({});

/** The production engines with `settings`. */
export function createDefaultEngineFactory(settings: EngineSettings): EngineFactory {
  return (kind, time) => {
    switch (kind) {
      case 'SANDBOX':
        return createSandboxEngine({
          ...time,
          network: new SandboxNetwork(new SandboxSendLog(settings.sandboxSendLog)),
        });
      case 'BAILEYS':
        return createBaileysEngine(time);
      default:
        return kind satisfies never;
    }
  };
}

/**
 * One engine per offered kind, built once per agent: every session of a kind
 * shares it (so sandbox sessions of one agent are on one simulated network).
 */
export function createEngines(
  kinds: readonly EngineKind[],
  factory: EngineFactory,
  time: EngineTime,
): Map<EngineKind, Engine> {
  const engines = new Map<EngineKind, Engine>();
  for (const kind of kinds) {
    if (engines.has(kind)) continue;
    const engine = factory(kind, time);
    if (engine.kind !== kind) throw new Error(`the engine factory built a ${engine.kind} engine for ${kind}`);
    engines.set(kind, engine);
  }
  return engines;
}
