import type { Logger } from '../../lib/logger.js';
import type { Resources } from '../platform/resources.js';
import type { EngineKind } from '../fleet/worker.entity.js';
import { Session, type SessionStatus } from './session.entity.js';
import type { ShownQr } from './session.state.js';

const CHANGES_CHANNEL = 'sessions:changes';

/** A change to one session, as WatchSession streams it. */
export interface SessionChange {
  session: Session;
  qr?: ShownQr;
  /** The session was deleted; the last change a watcher gets. */
  deleted?: boolean;
}

/**
 * Fans session changes out to watchers on every replica, through the
 * coordination store. A change carries the session as its commit left it
 * (not just its id), so watchers see every state in order instead of
 * whatever a later read finds. QR codes travel with the change that showed
 * them; credentials never do.
 */
export class SessionWatch {
  private readonly watchers = new Map<string, Set<(change: SessionChange) => void>>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly log: Logger;

  constructor(private readonly resources: Resources) {
    this.log = resources.logger.child({ component: 'session-watch' });
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.resources.store.subscribe(CHANGES_CHANNEL, (message) => this.deliver(message));
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Calls `onChange` with every change of the session (from any replica) until the returned function is called. */
  watch(sessionId: string, onChange: (change: SessionChange) => void): () => void {
    let listeners = this.watchers.get(sessionId);
    if (!listeners) {
      listeners = new Set();
      this.watchers.set(sessionId, listeners);
    }
    listeners.add(onChange);
    return () => {
      listeners.delete(onChange);
      if (listeners.size === 0) this.watchers.delete(sessionId);
    };
  }

  /** Tells every replica's watchers about a committed change. */
  async announce(session: Session, change: { qr?: ShownQr; deleted?: boolean } = {}): Promise<void> {
    try {
      const { qr, deleted } = change;
      await this.resources.store.publish(
        CHANGES_CHANNEL,
        JSON.stringify({
          sessionId: session.id,
          session: deleted ? undefined : snapshotOf(session),
          qr: qr ? { ...qr, expiresAt: qr.expiresAt.toISOString() } : undefined,
          deleted,
        }),
      );
    } catch (error) {
      this.log.warn({ err: error, sessionId: session.id }, 'could not announce a session change');
    }
  }

  private deliver(raw: string): void {
    try {
      const message = JSON.parse(raw) as {
        sessionId: string;
        session?: SessionSnapshot;
        qr?: { payload: string; expiresAt: string; sequence: number };
        deleted?: boolean;
      };
      const listeners = this.watchers.get(message.sessionId);
      if (!listeners || listeners.size === 0) return;
      if (message.deleted || !message.session) {
        for (const listener of listeners) listener({ session: { id: message.sessionId } as Session, deleted: true });
        return;
      }
      const session = sessionFromSnapshot(message.session);
      const qr = message.qr ? { ...message.qr, expiresAt: new Date(message.qr.expiresAt) } : undefined;
      for (const listener of listeners) listener({ session, qr });
    } catch (error) {
      this.log.warn({ err: error }, 'could not deliver a session change to watchers');
    }
  }
}

/** What a watcher needs of a session, as JSON between replicas. */
interface SessionSnapshot {
  id: string;
  tenantId: string;
  name: string;
  engine: EngineKind;
  status: SessionStatus;
  statusReason: string;
  labelSelector: string;
  affinities: Session['affinities'];
  workerId: string | null;
  epoch: number;
  account: Session['account'];
  createdAt: string;
  updatedAt: string;
}

function snapshotOf(session: Session): SessionSnapshot {
  return {
    id: session.id,
    tenantId: session.tenantId,
    name: session.name,
    engine: session.engine,
    status: session.status,
    statusReason: session.statusReason,
    labelSelector: session.labelSelector,
    affinities: session.affinities,
    workerId: session.workerId,
    epoch: session.epoch,
    account: session.account,
    createdAt: session.createdAt.toISOString(),
    updatedAt: session.updatedAt.toISOString(),
  };
}

function sessionFromSnapshot(snapshot: SessionSnapshot): Session {
  return Object.assign(new Session(), {
    ...snapshot,
    qrPayload: null,
    qrExpiresAt: null,
    qrSequence: 0,
    pendingSince: null,
    failedAttempts: 0,
    placeAfter: null,
    createdAt: new Date(snapshot.createdAt),
    updatedAt: new Date(snapshot.updatedAt),
  });
}
