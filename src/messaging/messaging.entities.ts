import { ChatSchema, MessageSchema } from './message.entity.js';

/** The messaging capability's tables, for the ORM list assembled in src/entities.ts. */
export const messagingEntities = [MessageSchema, ChatSchema];
