import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../lib/clock.js';
import type { CoordinationStore } from './coordination/coordination-store.js';
import type { Logger } from '../../lib/logger.js';
import type { Scheduler } from '../../lib/timers.js';

/**
 * The infrastructure every capability receives, built once in app.ts and
 * passed down; no module-level singletons.
 */
export interface Resources {
  readonly orm: MikroORM;
  readonly store: CoordinationStore;
  readonly clock: Clock;
  /** Timers; a ManualScheduler in tests drives them with the clock. */
  readonly scheduler: Scheduler;
  /** Uniform in [0, 1), for jitter; seeded in tests that need repeatable runs. */
  readonly random: () => number;
  readonly logger: Logger;
  /**
   * Where this replica keeps files that belong with its database (generated
   * development keys, the local agent's state): see platform/db/local-files.ts.
   */
  readonly localDir: string;
}
