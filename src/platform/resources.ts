import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from './clock.js';
import type { CoordinationStore } from './coordination/coordination-store.js';
import type { Logger } from './logger.js';

/**
 * The infrastructure every capability receives, built once in app.ts and
 * passed down; no module-level singletons.
 */
export interface Resources {
  readonly orm: MikroORM;
  readonly store: CoordinationStore;
  readonly clock: Clock;
  readonly logger: Logger;
}
