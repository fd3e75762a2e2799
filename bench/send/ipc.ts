import type { ServerEvent } from '../harness/ipc.js';

/** Floor server -> bench: listening (or not), and how many agents are welcomed (sent on every Hello). */
export type FloorEvent = ServerEvent | { type: 'agents'; connected: number };
