import type { Engine, EngineEvent } from '../../agent/engines/engine.js';

/** When and where a session's latest AssignSession reached a worker. */
export interface Placement {
  agent: number;
  /** performance.now() when the worker's engine opened the session. */
  atMs: number;
}

/**
 * Sees placements where they land: wraps each in-process agent's engine so
 * that every session the worker opens (which it does when an AssignSession
 * arrives and the worker has room) is timed and counted per agent. It also
 * counts what each agent holds, so a worker over its capacity would show.
 */
export class PlacementProbe {
  /** The latest opening of each session (a session placed again elsewhere moves). */
  readonly placements = new Map<string, Placement>();
  /** Every opening, so a session placed twice (refused, moved) shows as opens > placements. */
  opens = 0;
  readonly held: number[];
  readonly maxHeld: number[];
  private readonly listeners = new Set<() => void>();

  constructor(agents: number) {
    this.held = Array.from({ length: agents }, () => 0);
    this.maxHeld = Array.from({ length: agents }, () => 0);
  }

  /** The engine agent `index` runs, instrumented. */
  wrap(index: number, engine: Engine): Engine {
    return {
      kind: engine.kind,
      openSession: (input) => {
        const atMs = performance.now();
        this.opens += 1;
        this.placements.set(input.sessionId, { agent: index, atMs });
        this.held[index] = (this.held[index] ?? 0) + 1;
        this.maxHeld[index] = Math.max(this.maxHeld[index] ?? 0, this.held[index] ?? 0);
        let ended = false;
        const session = engine.openSession({
          ...input,
          onEvent: (event: EngineEvent) => {
            if (event.kind === 'ended' && !ended) {
              ended = true;
              this.held[index] = (this.held[index] ?? 0) - 1;
            }
            input.onEvent(event);
          },
        });
        for (const listener of this.listeners) listener();
        return session;
      },
    };
  }

  /** Resolves once `done()` holds; checked now and after every opening, and when poke() is called. */
  until(done: () => boolean): { reached: Promise<void>; poke: () => void; cancel: () => void } {
    let check = () => {};
    const reached = new Promise<void>((resolve) => {
      check = () => {
        if (done()) {
          this.listeners.delete(check);
          resolve();
        }
      };
    });
    this.listeners.add(check);
    check();
    return { reached, poke: check, cancel: () => this.listeners.delete(check) };
  }
}
