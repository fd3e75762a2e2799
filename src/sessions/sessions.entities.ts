import { SessionAuthStateSchema, SessionSchema } from './session.entity.js';

/** The sessions capability's tables, for the ORM list assembled in src/entities.ts. */
export const sessionsEntities = [SessionSchema, SessionAuthStateSchema];
