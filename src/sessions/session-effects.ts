import type { Logger } from '../../lib/logger.js';
import type { CommandSender } from '../fleet/fleet.types.js';
import type { SessionEffect } from './session.state.js';

/**
 * Carries out what the lifecycle rules ask once a change is committed:
 * wakes placement, and tells the worker to stop or log out a session.
 * (Starting on a worker, requests, auth-state wipes and deletes are done
 * by whoever committed the change, inside or right after its transaction.)
 */
export class SessionEffects {
  constructor(
    private readonly commands: CommandSender,
    /** Asks for a placement round soon. */
    private readonly requestPlacement: () => void,
    private readonly log: Logger,
  ) {}

  async carryOut(sessionId: string, effects: readonly SessionEffect[]): Promise<void> {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'requestPlacement':
          this.requestPlacement();
          break;
        case 'stopOnWorker':
        case 'logoutOnWorker': {
          // Best effort: the epoch already moved on, so even a worker that
          // misses this cannot report for the session any more.
          const command =
            effect.kind === 'stopOnWorker'
              ? ({ kind: 'stopSession', sessionId, epoch: effect.epoch, reason: 'stopped' } as const)
              : ({ kind: 'logoutSession', sessionId, epoch: effect.epoch } as const);
          const result = await this.commands.sendCommand(effect.workerId, command);
          if (!result.delivered) {
            this.log.warn({ sessionId, workerId: effect.workerId, detail: result.detail }, 'worker not told');
          }
          break;
        }
        case 'startOnWorker':
        case 'requestPairingCodeOnWorker':
        case 'sendOnWorker':
        case 'wipeAuthState':
        case 'deleteSession':
          break;
      }
    }
  }
}
