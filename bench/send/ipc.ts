/** Floor server -> bench: listening, and how many agents are welcomed (sent on every Hello). */
export type FloorEvent =
  { type: 'ready'; grpcUrl: string } | { type: 'agents'; connected: number } | { type: 'failed'; message: string };

/** Bench -> floor server. */
export type FloorCommand = { type: 'stop' };
