import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Random } from '../../lib/random.js';
import type { TenantPlan } from '../identity/identity.types.js';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import type { DispatchCandidate, DispatchDecision, DispatchGate } from './dispatch-gate.js';
import { chatForms, chatKey, decide, EMPTY_GOVERNOR_STATE, recordSend, type GovernorState } from './send-governor.js';
import { effectiveSendPolicy, type SendPolicy, type SendPolicyPlans } from './send-policy.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Replicas tell each other a session's policy changed here; the message is the session id. */
const POLICY_CHANNEL = 'send-policy:changed';
/** At most this many recent sends are replayed when a session is first seen. */
const SEED_ROWS = 5000;

/** What the governor needs from the composition root. */
export interface SendGovernorDependencies {
  orm: MikroORM;
  store: CoordinationStore;
  plans: SendPolicyPlans;
  /** Draws the jitter pauses; seeded in tests. */
  random: Random;
  logger: Logger;
  /**
   * A session not decided for this long is read again from the database on
   * its next decision (it may have been dispatched by another replica
   * meanwhile); default 60 s.
   */
  idleMs?: number;
  /**
   * The policy, plan and link time are read again after this long even
   * without a change announced (a lost announcement, a plan change); default 5 min.
   */
  refreshMs?: number;
}

/** The gate the dispatcher asks, and the announcement SetSendPolicy makes after commit. */
export interface SendGovernor {
  gate: DispatchGate;
  /** Every replica's governor forgets the session and reads its new policy on the next decision. */
  policyChanged(sessionId: string): Promise<void>;
  /** Ends the subscription to policy changes. */
  close(): Promise<void>;
}

/** One session as this replica's governor knows it. */
interface Entry {
  policy: SendPolicy;
  linkedAt: number | null;
  state: GovernorState;
  /** Chats (by chatKey) that wrote to the number; once known, always known. */
  known: Set<string>;
  /** Chats found not known, and when: looked up again after `idleMs` (they may write meanwhile). */
  unknownAt: Map<string, number>;
  loadedAt: number;
  usedAt: number;
}

interface SessionRow {
  tenant_id: string;
  linked_at: Date | string | null;
  send_policy: Record<string, number> | string | null;
  plan: TenantPlan;
}

/**
 * The send governor as the dispatcher's DispatchGate. It keeps each session's
 * state in memory on the replica that dispatches it (decisions need no
 * database round trip), seeded from the database the first time it sees a
 * session (today's count and recent sends with their chats from the message
 * table, chats that wrote to the number from inbound rows, linked_at and the
 * policy from the session row), again after the session was idle here, and
 * when its policy changes.
 */
export function createSendGovernor(deps: SendGovernorDependencies): SendGovernor {
  return new SessionGovernors(deps);
}

class SessionGovernors implements SendGovernor {
  readonly gate: DispatchGate = {
    decide: (sessionId, candidates, now, tx) => this.enqueue(sessionId, candidates, now, tx),
  };
  private readonly idleMs: number;
  private readonly refreshMs: number;
  private readonly log: Logger;
  private readonly entries = new Map<string, Entry>();
  /** Decisions of one session run one at a time: each starts from the state the previous left. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private subscription: Promise<() => Promise<void>> | undefined;
  private decisionsSinceSweep = 0;

  constructor(private readonly deps: SendGovernorDependencies) {
    this.idleMs = deps.idleMs ?? 60_000;
    this.refreshMs = deps.refreshMs ?? 5 * 60_000;
    this.log = deps.logger.child({ component: 'send-governor' });
  }

  async policyChanged(sessionId: string): Promise<void> {
    this.entries.delete(sessionId);
    try {
      await this.deps.store.publish(POLICY_CHANNEL, sessionId);
    } catch (error) {
      this.log.warn(
        { err: error, sessionId },
        'could not announce a send policy change; other replicas see it within the refresh interval',
      );
    }
  }

  async close(): Promise<void> {
    const unsubscribe = await this.subscription?.catch(() => undefined);
    this.subscription = undefined;
    await unsubscribe?.();
  }

  private enqueue(
    sessionId: string,
    candidates: readonly DispatchCandidate[],
    now: Date,
    tx: EntityManager | undefined,
  ): Promise<DispatchDecision[]> {
    if (candidates.length === 0) return Promise.resolve([]);
    const previous = this.queues.get(sessionId) ?? Promise.resolve();
    const run = () => this.decide(sessionId, candidates, now, tx);
    const next = previous.then(run, run);
    this.queues.set(sessionId, next);
    const forget = () => {
      if (this.queues.get(sessionId) === next) this.queues.delete(sessionId);
    };
    next.then(forget, forget);
    return next;
  }

  private async decide(
    sessionId: string,
    candidates: readonly DispatchCandidate[],
    now: Date,
    tx: EntityManager | undefined,
  ): Promise<DispatchDecision[]> {
    const nowMs = now.getTime();
    await this.subscribe();
    const em = tx ?? this.deps.orm.em.fork();
    let entry = this.entries.get(sessionId);
    if (!entry || nowMs - entry.usedAt > this.idleMs || nowMs - entry.loadedAt > this.refreshMs) {
      entry = await this.load(em, sessionId, candidates, nowMs);
      this.entries.set(sessionId, entry);
    } else {
      await this.learnKnown(
        em,
        sessionId,
        entry,
        candidates.map((c) => c.chat),
        nowMs,
      );
    }
    const result = decide(entry.state, {
      policy: entry.policy,
      linkedAt: entry.linkedAt,
      known: entry.known,
      candidates,
      now: nowMs,
      random: this.deps.random,
    });
    entry.state = result.state;
    entry.usedAt = nowMs;
    this.sweep(nowMs);
    return result.decisions;
  }

  private subscribe(): Promise<unknown> {
    this.subscription ??= this.deps.store.subscribe(POLICY_CHANNEL, (sessionId) => this.entries.delete(sessionId));
    return this.subscription.catch((error: unknown) => {
      // Without announcements a change still arrives within refreshMs.
      this.log.warn({ err: error }, 'could not subscribe to send policy changes');
      this.subscription = undefined;
    });
  }

  /** Forgets sessions this replica no longer dispatches (they moved, or went quiet). */
  private sweep(nowMs: number): void {
    if (++this.decisionsSinceSweep < 1000) return;
    this.decisionsSinceSweep = 0;
    for (const [sessionId, entry] of this.entries) {
      if (nowMs - entry.usedAt > this.idleMs) this.entries.delete(sessionId);
    }
  }

  /** Which of `chats` wrote to the number, asked of the database only for chats not looked up recently. */
  private async learnKnown(
    em: EntityManager,
    sessionId: string,
    entry: Entry,
    chats: readonly string[],
    nowMs: number,
  ): Promise<void> {
    const ask = [
      ...new Set(
        chats.filter((chat) => {
          const key = chatKey(chat);
          if (entry.known.has(key)) return false;
          const checkedAt = entry.unknownAt.get(key);
          return checkedAt === undefined || nowMs - checkedAt > this.idleMs;
        }),
      ),
    ];
    if (ask.length === 0) return;
    const forms = [...new Set(ask.flatMap(chatForms))];
    const rows = await read<{ chat: string }>(
      em,
      `select distinct "chat" from "message" where "session_id" = ? and "direction" = 'INBOUND' and "chat" in (${forms.map(() => '?').join(', ')})`,
      [sessionId, ...forms],
    );
    for (const row of rows) entry.known.add(chatKey(row.chat));
    for (const chat of ask) if (!entry.known.has(chatKey(chat))) entry.unknownAt.set(chatKey(chat), nowMs);
  }

  private async load(
    em: EntityManager,
    sessionId: string,
    candidates: readonly DispatchCandidate[],
    nowMs: number,
  ): Promise<Entry> {
    const [session] = await read<SessionRow>(
      em,
      `select s."tenant_id", s."linked_at", s."send_policy", t."plan" from "session" s join "tenant" t on t."id" = s."tenant_id" where s."id" = ?`,
      [sessionId],
    );
    if (!session) throw DomainError.notFound('session', sessionId);
    const stored =
      typeof session.send_policy === 'string'
        ? (JSON.parse(session.send_policy) as Record<string, number> | null)
        : session.send_policy;
    const policy = effectiveSendPolicy(this.deps.plans[session.plan] ?? this.deps.plans.free, stored);
    const entry: Entry = {
      policy,
      linkedAt: session.linked_at === null ? null : new Date(session.linked_at).getTime(),
      state: EMPTY_GOVERNOR_STATE,
      known: new Set(),
      unknownAt: new Map(),
      loadedAt: nowMs,
      usedAt: nowMs,
    };
    const { sentToday, recent } = await this.sent(em, sessionId, policy, nowMs);
    await this.learnKnown(
      em,
      sessionId,
      entry,
      [...candidates.map((c) => c.chat), ...recent.map((r) => r.chat)],
      nowMs,
    );
    let state = EMPTY_GOVERNOR_STATE;
    for (const send of recent) state = recordSend(state, { policy, known: entry.known }, chatKey(send.chat), send.at);
    entry.state = { ...state, day: Math.floor(nowMs / DAY_MS), sentToday };
    this.log.debug({ sessionId, plan: session.plan, sentToday, recent: recent.length }, 'send governor seeded');
    return entry;
  }

  /** What the session sent today (a count) and recently enough to matter for the rates (oldest first). */
  private async sent(
    em: EntityManager,
    sessionId: string,
    policy: SendPolicy,
    nowMs: number,
  ): Promise<{ sentToday: number; recent: { chat: string; at: number }[] }> {
    const todayStart = Math.floor(nowMs / DAY_MS) * DAY_MS;
    // Far enough back to rebuild every rate: a full new-recipient burst, or a session bucket.
    const windowMs = Math.max((policy.newRecipientBurst + 1) * policy.newRecipientIntervalSeconds * 1000, 2 * 60_000);
    // A message counts from when it was handed to a worker (or, sent before the pipeline stamped that, when it was sent).
    const sentAt = `coalesce("dispatched_at", "sent_at")`;
    const [counted] = await read<{ n: string | number }>(
      em,
      `select count(*) as "n" from "message" where "session_id" = ? and "direction" = 'OUTBOUND' and ${sentAt} >= ?`,
      [sessionId, new Date(todayStart)],
    );
    const rows = await read<{ chat: string; at: Date | string }>(
      em,
      `select "chat", ${sentAt} as "at" from "message" where "session_id" = ? and "direction" = 'OUTBOUND' and ${sentAt} >= ? and ${sentAt} <= ? order by ${sentAt} desc limit ${SEED_ROWS}`,
      [sessionId, new Date(nowMs - windowMs), new Date(nowMs)],
    );
    const recent = rows.map((row) => ({ chat: row.chat, at: new Date(row.at).getTime() })).reverse();
    return { sentToday: Number(counted?.n ?? 0), recent };
  }
}

/** A read on `em`'s transaction when it has one (the dispatcher's), else on the pool. */
function read<T>(em: EntityManager, sql: string, params: unknown[]): Promise<T[]> {
  return em.getConnection().execute<T[]>(sql, params, 'all', em.getTransactionContext());
}
