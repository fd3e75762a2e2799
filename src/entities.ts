import { auditEntities } from './audit/audit.entities.js';
import { eventsEntities } from './events/events.entities.js';
import { fleetEntities } from './fleet/fleet.entities.js';
import { identityEntities } from './identity/identity.entities.js';
import { messagingEntities } from './messaging/messaging.entities.js';
import { platformEntities } from './platform/db/installation.entity.js';
import { sessionsEntities } from './sessions/sessions.entities.js';

/**
 * Every entity the ORM knows, one list so the app, the CLIs and the tests
 * agree. It lives beside app.ts, not in platform/: the database is
 * infrastructure and knows no capability; each capability lists its own.
 */
export const entities = [
  ...platformEntities,
  ...fleetEntities,
  ...sessionsEntities,
  ...messagingEntities,
  ...eventsEntities,
  ...identityEntities,
  ...auditEntities,
];
