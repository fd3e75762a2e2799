import type { EngineEvent, EngineKind, EngineSession } from '../engines/engine.js';
import type { OutboundQueue } from './outbound-queue.js';

/**
 * What of a hosted session's events still goes up:
 * - `all`: it is the current assignment; everything but `pairingCode` (which
 *   travels in the Response) goes up.
 * - `checkpoints`: being stopped at shutdown; only auth checkpoints go up.
 * - `none`: fenced or replaced by a newer epoch; its events are dropped.
 */
export type Forwarding = 'all' | 'checkpoints' | 'none';

/** One engine session held under one assignment epoch. */
export class Hosted {
  forwarding: Forwarding = 'all';
  /**
   * Events emitted while the assignment is still starting, held back so the
   * CommandAck of the assignment always goes up before its first event.
   * Undefined once flushed.
   */
  buffered: EngineEvent[] | undefined = [];
  /** The last pairing code the engine announced, for the expiry in the Response. */
  pairingCode: { code: string; expiresAt: Date } | undefined;
  readonly session: EngineSession;
  /** Messages dispatched to this assignment, sent one at a time. */
  readonly outbound: OutboundQueue;

  constructor(
    readonly sessionId: string,
    readonly epoch: number,
    readonly engine: EngineKind,
    open: (onEvent: (event: EngineEvent) => void) => EngineSession,
    onEvent: (hosted: Hosted, event: EngineEvent) => void,
    outbound: (hosted: Hosted) => OutboundQueue,
  ) {
    this.session = open((event) => onEvent(this, event));
    this.outbound = outbound(this);
  }
}
