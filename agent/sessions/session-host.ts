import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type {
  AssignSession,
  LogoutSession,
  OutboundMessage,
  Request,
  StopSession,
} from '../../gen/switchboard/v1/worker_pb.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Engine, EngineEvent, EngineKind } from '../engines/engine.js';
import { systemScheduler, type Scheduler, type Timer } from '../../lib/timers.js';
import { Hosted, type Forwarding } from './hosted.js';
import { OutboundQueue, type SendOutcome } from './outbound-queue.js';
import { refusalDetail, toResponseError } from './response-error.js';
import { engineKind, toEventPayload, toOutcomePayload, type SessionEventInit } from './session-events.js';
import { perform, withDeadline, type ResponseInit } from './session-requests.js';

export type { SessionEventInit } from './session-events.js';
export type { ResponseInit } from './session-requests.js';
/** A CommandAck as it goes up the stream, on the command's correlation id. */
export interface CommandAckInit {
  accepted: boolean;
  detail: string;
}
/** A session this worker runs, as Hello reports it. */
export interface HeldSessionRef {
  sessionId: string;
  epoch: number;
}

/**
 * Why stopAll() runs, which decides what the stopping sessions may still say:
 * - `fenced`: the lease lapsed, so the control plane may already have
 *   reassigned every session under a newer epoch. Nothing goes up, not even
 *   `ended`: the new owner's events are the truth now, and an old-epoch
 *   event would at best be refused and at worst race the new owner's.
 * - `shutdown`: the agent is stopping on purpose. Final auth checkpoints go
 *   up (Baileys flushes one on stop), so the next worker resumes from the
 *   newest keys; `ended STOPPED` does not, since it would read as a
 *   deliberate stop of the session, while the control plane learns of the
 *   shutdown from the stream ending and places the sessions elsewhere.
 */
export type StopAllMode = 'fenced' | 'shutdown';

/** What the host configures once; engines are built by the agent, one per offered kind. */
export interface SessionHostOptions {
  /** The engines this worker offers, one instance each. */
  engines: ReadonlyMap<EngineKind, Engine>;
  /** Most sessions held at once (the capacity announced in Hello); a new session beyond it is refused. */
  capacity: number;
  /** Sends one session event up the stream. Must not throw. */
  send: (event: SessionEventInit) => void;
  logger: Logger;
  /** Stamps events and reads request deadlines. Default the system clock. */
  clock?: Clock;
  /** Deadline and stop timers. Default real timers. */
  scheduler?: Scheduler;
  /** How long stopping one session may take before the host stops waiting for it. Default 5 s. */
  stopTimeoutMs?: number;
  /** Most dispatched messages waiting per session; more are refused RESOURCE_EXHAUSTED. Default 1000. */
  outboundQueueLimit?: number;
  /** How long one send may take before it is reported UNAVAILABLE (it may still go out). Default 30 s. */
  sendTimeoutMs?: number;
}

type ResponseResult = ResponseInit['result'];

/**
 * The sessions this worker runs, keyed by session id, each under the epoch
 * of its assignment. Turns the control plane's commands and requests into
 * engine calls, and engine events into SessionEvents stamped with the
 * session id and epoch. Commands for one session run one after another; a
 * request waits for the commands that arrived before it, but not for other
 * requests. No method rejects: every outcome is an answer.
 */
export class SessionHost {
  private readonly sessions = new Map<string, Hosted>();
  /** Callers of whenIdle() waiting for the last session and command to finish. */
  private readonly idleWaiters: (() => void)[] = [];
  /** The last queued command per session id, so commands for one session never interleave. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Bumped by stopAll(): an assignment that was in progress then must not start anything afterwards. */
  private generation = 0;
  private readonly engines: ReadonlyMap<EngineKind, Engine>;
  private readonly send: (event: SessionEventInit) => void;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly log: Logger;
  private readonly capacity: number;
  private readonly stopTimeoutMs: number;
  private readonly outboundQueueLimit: number;
  private readonly sendTimeoutMs: number;

  constructor(options: SessionHostOptions) {
    this.engines = options.engines;
    this.send = options.send;
    this.clock = options.clock ?? systemClock;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.log = options.logger;
    this.capacity = options.capacity;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
    this.outboundQueueLimit = options.outboundQueueLimit ?? 1_000;
    this.sendTimeoutMs = options.sendTimeoutMs ?? 30_000;
  }

  /** Sessions held now (for heartbeats and drain). */
  get count(): number {
    return this.sessions.size;
  }

  /**
   * Resolves once no session is held and no command is still running (at
   * once when so): a draining agent waits on it, so the answer to the
   * StopSession that moved the last session goes up before the stream ends.
   */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Every session held now with its epoch, for Hello: the control plane reconciles from it. */
  held(): HeldSessionRef[] {
    return [...this.sessions.values()].map(({ sessionId, epoch }) => ({ sessionId, epoch }));
  }

  /**
   * Runs a session under the command's epoch and answers with `ack`. Refused
   * for an epoch older than the one held, an engine this worker does not
   * offer, a full worker, or an auth state the engine cannot use. A session
   * held under an older epoch is stopped first (silently: the new assignment
   * speaks for it now). The same epoch again is accepted without a restart,
   * so a command repeated after a reconnect is harmless.
   */
  assign(command: AssignSession, ack: (ack: CommandAckInit) => void): Promise<void> {
    // Taken on arrival: a fence after this, even while the command waits its turn, refuses it.
    const generation = this.generation;
    return this.serialize(command.sessionId, async () => {
      let started: Hosted | undefined;
      let answer: CommandAckInit;
      try {
        started = await this.start(command, generation);
        answer = { accepted: true, detail: `running under epoch ${command.epoch}` };
      } catch (error) {
        answer = this.refusal(error, { sessionId: command.sessionId, epoch: command.epoch, command: 'assign' });
      }
      ack(answer);
      if (started) this.flush(started);
    });
  }

  /** Stops the session and keeps its auth state (the engine says `ended STOPPED`). Not held here: accepted, nothing to do. */
  stop(command: StopSession, ack: (ack: CommandAckInit) => void): Promise<void> {
    return this.serialize(command.sessionId, async () => {
      const hosted = this.sessions.get(command.sessionId);
      if (hosted === undefined) {
        ack({ accepted: true, detail: 'not held here; nothing to stop' });
        return;
      }
      try {
        this.requireEpoch(hosted, command.epoch);
      } catch (error) {
        ack(this.refusal(error, { sessionId: command.sessionId, epoch: command.epoch, command: 'stop' }));
        return;
      }
      // Still forwarding everything: the control plane asked, so it hears `ended STOPPED`.
      await this.retire(hosted, 'all', `stop requested: ${command.reason || 'no reason given'}`);
      ack({ accepted: true, detail: 'stopped; auth state kept' });
    });
  }

  /** Unlinks the account and ends the session (the engine says `ended LOGGED_OUT`). */
  logout(command: LogoutSession, ack: (ack: CommandAckInit) => void): Promise<void> {
    return this.serialize(command.sessionId, async () => {
      try {
        const hosted = this.heldUnder(command.sessionId, command.epoch);
        this.log.info({ sessionId: hosted.sessionId, epoch: String(hosted.epoch) }, 'logging session out on request');
        try {
          await hosted.session.logout();
        } finally {
          this.remove(hosted);
        }
        ack({ accepted: true, detail: 'logged out; auth state is void' });
      } catch (error) {
        ack(this.refusal(error, { sessionId: command.sessionId, epoch: command.epoch, command: 'logout' }));
      }
    });
  }

  /**
   * Performs a tenant's request on the session held under its epoch and
   * answers with `respond`. When the deadline passes first the answer is
   * DEADLINE_EXCEEDED, though the engine may still complete the action (a
   * text may still go out); a deadline already past does nothing at all.
   * Commands for the session that arrived earlier complete first; requests
   * do not wait for one another.
   */
  async handleRequest(request: Request, respond: (response: ResponseInit) => void): Promise<void> {
    let result: ResponseResult;
    try {
      // After the commands that arrived before it (an assignment still starting), not in parallel with them.
      const earlier = this.tails.get(request.sessionId);
      if (earlier) await earlier;
      const hosted = this.heldUnder(request.sessionId, request.epoch);
      const deadline = request.deadline === undefined ? undefined : timestampDate(request.deadline);
      result = await withDeadline({ clock: this.clock, scheduler: this.scheduler }, deadline, () =>
        perform(hosted, request.action),
      );
    } catch (error) {
      const { unexpected, ...value } = toResponseError(error);
      this.log[unexpected ? 'error' : 'debug'](
        { err: error, sessionId: request.sessionId, epoch: String(request.epoch), action: request.action.case },
        'request failed',
      );
      result = { case: 'error', value };
    }
    try {
      respond({ result });
    } catch (error) {
      this.log.error({ err: error, sessionId: request.sessionId }, 'answering a request failed');
    }
  }

  /**
   * Queues dispatched messages on their sessions, each sent in turn under
   * our message id (see OutboundQueue). A message for an assignment not
   * running here (another epoch, a session not held or being stopped) is
   * dropped with a log line, not answered: the control plane dispatched it
   * on stale knowledge and dispatches it again to the real owner once its
   * confirmation is overdue, while a failure from here would be fenced off
   * (wrong epoch) or, worse, fail a message the owner is about to send.
   */
  dispatch(messages: readonly OutboundMessage[]): void {
    let dropped = 0;
    let duplicates = 0;
    for (const message of messages) {
      const hosted = this.sessions.get(message.sessionId);
      if (hosted === undefined || hosted.epoch !== message.epoch || hosted.forwarding !== 'all') {
        dropped++;
        continue;
      }
      switch (message.content.case) {
        case 'text': {
          const { to, text } = message.content.value;
          if (hosted.outbound.enqueue({ messageId: message.messageId, to, text }) === 'duplicate') duplicates++;
          break;
        }
        case undefined:
          this.report(hosted, {
            kind: 'failed',
            messageId: message.messageId,
            code: 'INVALID_ARGUMENT',
            reason: 'the dispatched message has no content this worker knows',
          });
          break;
        default:
          message.content satisfies never;
      }
    }
    if (dropped > 0) {
      this.log.warn(
        { dropped, of: messages.length },
        'dispatched messages for sessions not running here under that epoch dropped; the control plane redispatches',
      );
    }
    if (duplicates > 0) this.log.debug({ duplicates }, 'dispatched messages already queued here ignored');
  }

  /**
   * Stops every session at once, for fencing and shutdown (see StopAllMode
   * for what still goes up). Nothing is held afterwards, and an assignment
   * in progress is refused rather than started. Resolves when every engine
   * session stopped or the stop timeout passed.
   */
  async stopAll(reason: string, mode: StopAllMode): Promise<void> {
    this.generation += 1;
    const all = [...this.sessions.values()];
    if (all.length > 0) this.log.warn({ reason, mode, sessions: all.length }, 'stopping every session');
    await Promise.all(
      all.map((hosted) => {
        const stopped = this.retire(hosted, mode === 'fenced' ? 'none' : 'checkpoints', reason);
        // A later assignment of the same session waits for this stop.
        void this.serialize(hosted.sessionId, () => stopped);
        return stopped;
      }),
    );
  }

  /** Opens and starts the engine session for an assignment; throws DomainError/EngineError to refuse. */
  private async start(command: AssignSession, generation: number): Promise<Hosted> {
    const { sessionId, epoch } = command;
    this.requireGeneration(generation);
    if (sessionId === '') throw DomainError.invalidArgument('session_id', 'must not be empty');
    const kind = engineKind(command.engine);
    if (kind === undefined) throw DomainError.invalidArgument('engine', `unknown engine ${command.engine}`);
    const engine = this.engines.get(kind);
    if (engine === undefined) {
      const offered = [...this.engines.keys()].join(', ');
      throw new DomainError(
        'FAILED_PRECONDITION',
        `this worker does not offer the ${kind} engine (it offers ${offered})`,
      );
    }
    const current = this.sessions.get(sessionId);
    if (current !== undefined) {
      if (epoch < current.epoch) {
        throw new DomainError(
          'FAILED_PRECONDITION',
          `epoch ${epoch} is older than the epoch held here (${current.epoch})`,
        );
      }
      if (epoch === current.epoch) {
        if (current.engine === kind) return current;
        throw new DomainError(
          'FAILED_PRECONDITION',
          `epoch ${epoch} is already held here on the ${current.engine} engine, not ${kind}`,
        );
      }
      await this.retire(current, 'none', `replaced by epoch ${epoch}`);
      this.requireGeneration(generation);
    } else if (this.sessions.size >= this.capacity) {
      throw new DomainError('RESOURCE_EXHAUSTED', `this worker is full (${this.capacity} sessions)`);
    }

    const opened = new Hosted(
      sessionId,
      epoch,
      kind,
      (onEvent) =>
        engine.openSession({
          sessionId,
          authState: command.authState.length === 0 ? null : command.authState,
          onEvent,
          logger: this.log.child({ sessionId, epoch: String(epoch) }),
        }),
      (hosted, event) => this.onEngineEvent(hosted, event),
      (hosted) =>
        new OutboundQueue({
          limit: this.outboundQueueLimit,
          send: (message) => hosted.session.sendText(message.to, message.text, message.messageId),
          report: (outcome) => this.report(hosted, outcome),
          settled: () => this.tails.get(sessionId),
          scheduler: this.scheduler,
          sendTimeoutMs: this.sendTimeoutMs,
          log: this.log.child({ sessionId, epoch: String(epoch) }),
        }),
    );
    this.sessions.set(sessionId, opened);
    try {
      await opened.session.start();
    } catch (error) {
      // Engines emit nothing when start() fails (a bad auth state is not a network condition).
      this.remove(opened);
      opened.forwarding = 'none';
      throw error;
    }
    if (opened.forwarding !== 'all') {
      // stopAll() stopped it meanwhile (what it emitted since is dropped with the buffer).
      throw new DomainError('UNAVAILABLE', 'the worker stopped every session while this one was starting');
    }
    this.log.info({ sessionId, epoch: String(epoch), engine: kind }, 'session assigned');
    return opened;
  }

  private onEngineEvent(hosted: Hosted, event: EngineEvent): void {
    if (event.kind === 'pairingCode') {
      // Not an event upstream: the code goes back in the Response to the request that asked for it.
      hosted.pairingCode = { code: event.code, expiresAt: event.expiresAt };
      return;
    }
    // Messages still waiting will not go out from here: said before `ended`, so they are dispatched again.
    if (event.kind === 'ended') hosted.outbound.close('UNAVAILABLE', `the session ended (${event.reason})`);
    if (hosted.buffered) hosted.buffered.push(event);
    else this.forward(hosted, event);
    if (event.kind === 'ended') {
      this.log.info(
        { sessionId: hosted.sessionId, epoch: String(hosted.epoch), reason: event.reason },
        'session ended',
      );
      this.remove(hosted);
    }
  }

  /** Sends the events held back while the assignment started, once its ack went up. */
  private flush(hosted: Hosted): void {
    const buffered = hosted.buffered;
    hosted.buffered = undefined;
    for (const event of buffered ?? []) this.forward(hosted, event);
  }

  private forward(hosted: Hosted, event: EngineEvent): void {
    if (hosted.forwarding === 'none') return;
    if (hosted.forwarding === 'checkpoints' && event.kind !== 'authCheckpoint') return;
    const payload = toEventPayload(event);
    if (payload === undefined) return;
    this.send({
      sessionId: hosted.sessionId,
      epoch: hosted.epoch,
      occurredAt: timestampFromDate(this.clock.now()),
      event: payload,
    });
  }

  /** Reports a dispatched message's outcome, as long as the assignment still speaks for the session. */
  private report(hosted: Hosted, outcome: SendOutcome): void {
    if (hosted.forwarding !== 'all') return;
    this.send({
      sessionId: hosted.sessionId,
      epoch: hosted.epoch,
      occurredAt: timestampFromDate(this.clock.now()),
      event: toOutcomePayload(outcome),
    });
  }

  /** Takes the session off the host (if it is still the one held) and stops it; never rejects. */
  private async retire(hosted: Hosted, forwarding: Forwarding, reason: string): Promise<void> {
    hosted.forwarding = forwarding;
    this.remove(hosted);
    this.log.info({ sessionId: hosted.sessionId, epoch: String(hosted.epoch), reason }, 'stopping session');
    let timer: Timer | undefined;
    const timedOut = new Promise<'timed out'>((resolve) => {
      timer = this.scheduler.schedule(this.stopTimeoutMs, () => resolve('timed out'));
    });
    try {
      const outcome = await Promise.race([hosted.session.stop().then(() => 'stopped' as const), timedOut]);
      if (outcome === 'timed out') {
        this.log.warn(
          { sessionId: hosted.sessionId, timeoutMs: this.stopTimeoutMs },
          'session did not stop in time; no longer waiting for it',
        );
      }
    } catch (error) {
      this.log.warn({ err: error, sessionId: hosted.sessionId }, 'stopping the session failed');
    } finally {
      timer?.cancel();
    }
  }

  private remove(hosted: Hosted): void {
    hosted.outbound.close('UNAVAILABLE', 'the session stopped on this worker');
    if (this.sessions.get(hosted.sessionId) === hosted) this.sessions.delete(hosted.sessionId);
    this.wakeIfIdle();
  }

  private idle(): boolean {
    return this.sessions.size === 0 && this.tails.size === 0;
  }

  private wakeIfIdle(): void {
    if (this.idle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private heldUnder(sessionId: string, epoch: number): Hosted {
    const hosted = this.sessions.get(sessionId);
    if (hosted === undefined)
      throw new DomainError('NOT_FOUND', `session ${JSON.stringify(sessionId)} is not held here`);
    this.requireEpoch(hosted, epoch);
    return hosted;
  }

  private requireEpoch(hosted: Hosted, epoch: number): void {
    if (hosted.epoch !== epoch) {
      throw new DomainError(
        'FAILED_PRECONDITION',
        `session ${JSON.stringify(hosted.sessionId)} is held here under epoch ${hosted.epoch}, not ${epoch}`,
      );
    }
  }

  private requireGeneration(generation: number): void {
    if (this.generation !== generation) {
      throw new DomainError('UNAVAILABLE', 'the worker stopped every session while this one was being assigned');
    }
  }

  private refusal(error: unknown, context: { sessionId: string; epoch: number; command: string }): CommandAckInit {
    const { unexpected, ...value } = toResponseError(error);
    this.log[unexpected ? 'error' : 'warn'](
      { err: error, sessionId: context.sessionId, epoch: String(context.epoch), command: context.command },
      'session command refused',
    );
    return { accepted: false, detail: refusalDetail(value) };
  }

  /** Runs `task` after every command queued before it for the same session; never rejects. */
  private serialize(sessionId: string, task: () => Promise<void>): Promise<void> {
    const guarded = () =>
      task().catch((error: unknown) => this.log.error({ err: error, sessionId }, 'session command failed'));
    const run = (this.tails.get(sessionId) ?? Promise.resolve()).then(guarded);
    this.tails.set(sessionId, run);
    void run.finally(() => {
      if (this.tails.get(sessionId) === run) this.tails.delete(sessionId);
      this.wakeIfIdle();
    });
    return run;
  }
}
