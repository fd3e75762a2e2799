import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import type { Logger } from '../../lib/logger.js';

/** Something cached about a credential changed: a user, a session, an API key or a whole tenant. */
export interface InvalidationEvent {
  userId?: string;
  sessionId?: string;
  apiKeyId?: string;
  tenantId?: string;
}

const CHANNEL = 'auth:invalidate';

/**
 * Tells every replica to drop cached credentials at once (revoked key,
 * suspended user, changed role) instead of waiting for the cache TTL.
 * The local handler runs synchronously, so the next call on this replica
 * already sees the change.
 */
export class AuthInvalidation {
  private readonly handlers = new Set<(event: InvalidationEvent) => void>();
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly store: CoordinationStore,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.store.subscribe(CHANNEL, (message) => {
      try {
        this.deliver(JSON.parse(message) as InvalidationEvent);
      } catch (error) {
        this.log.warn({ err: error }, 'ignored malformed invalidation message');
      }
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /**
   * Calls `handler` on every invalidation, local or from another replica,
   * in the order handlers were added (caches first, then the live calls that
   * re-check against them). Returns a function that removes it.
   */
  onInvalidate(handler: (event: InvalidationEvent) => void): () => void {
    const subscription = (event: InvalidationEvent) => handler(event);
    this.handlers.add(subscription);
    return () => this.handlers.delete(subscription);
  }

  async publish(event: InvalidationEvent): Promise<void> {
    this.deliver(event);
    await this.store.publish(CHANNEL, JSON.stringify(event));
  }

  private deliver(event: InvalidationEvent): void {
    // Copied: a handler may remove itself (a call ending) while being told.
    for (const handler of [...this.handlers]) handler(event);
  }
}
