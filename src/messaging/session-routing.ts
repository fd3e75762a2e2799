import type { EntityManager } from '@mikro-orm/postgresql';

/** Where a message for a session goes now: the session, and the worker and attempt that hold its connection. */
export interface SendRoute {
  sessionId: string;
  tenantId: string;
  workerId: string;
  epoch: number;
  /** The session's own number (the sender of what it sends); empty until known. */
  sender: string;
}

/**
 * What messaging needs from the sessions capability. Declared here and
 * implemented there (the composition root wires it), so messaging does not
 * import sessions, while sessions hands messaging what workers report.
 */
export interface SessionRouting {
  /**
   * The tenant's session, if it can send now (WORKING): NOT_FOUND for a
   * session of another tenant, FAILED_PRECONDITION in any other state.
   */
  routeForSend(em: EntityManager, tenantId: string, sessionId: string): Promise<SendRoute>;
}
