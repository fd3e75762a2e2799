import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import type { Logger } from '../platform/logger.js';

/** Something cached about a credential changed: a user, a session or an API key. */
export interface InvalidationEvent {
  userId?: string;
  sessionId?: string;
  apiKeyId?: string;
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

  onInvalidate(handler: (event: InvalidationEvent) => void): void {
    this.handlers.add(handler);
  }

  async publish(event: InvalidationEvent): Promise<void> {
    this.deliver(event);
    await this.store.publish(CHANNEL, JSON.stringify(event));
  }

  private deliver(event: InvalidationEvent): void {
    for (const handler of this.handlers) handler(event);
  }
}
