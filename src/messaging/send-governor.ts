import type { Random } from '../../lib/random.js';
import type { DispatchCandidate, DispatchDecision } from './dispatch-gate.js';
import type { SendPolicy } from './send-policy.js';

/**
 * The send governor's rules, pure: given a session's policy, what it has
 * sent, and the queued candidates, which go now and until when the others
 * wait. No I/O and no clock of its own; randomness (jitter) is passed in.
 *
 * The rules, all per session:
 * - Session rate: a token bucket (GCRA) of `perMinute` per minute that holds
 *   10 seconds' worth of messages (at least 1), so a quiet session may send a
 *   short burst but never a minute's worth at once.
 * - New recipients: a chat that never wrote to the number ("new contact") gets
 *   `newRecipientBurst` messages at once, then one per
 *   `newRecipientIntervalSeconds`. Chats that wrote to the number (and groups)
 *   are not limited by this rule.
 * - Daily cap: `perDay` per UTC calendar day (resets at 00:00 UTC; the
 *   session rate keeps the reset from turning into a burst). A UTC day is what
 *   a tenant can predict and what one count query seeds.
 * - Warm-up: on day k (1-based, counted in 24 h steps from `linkedAt`) of a
 *   W-day warm-up the daily cap is floor(perDay * k / (W + 1)), at least 1: a
 *   linear ramp from 1/(W+1) of the cap to the full cap from day W+1. A session
 *   never linked through us (no `linkedAt`) has no warm-up.
 * - Jitter: after each message a random pause in [0, jitterMs) before the next.
 * - Order: a held message holds every later message to the same chat.
 * Nothing is ever dropped: every candidate gets a decision, release or hold.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
const SESSION_BUCKET_SECONDS = 10;

/** What the governor remembers of one session between decisions (times in epoch ms). */
export interface GovernorState {
  /** GCRA theoretical arrival time of the session's bucket. */
  readonly sessionTat: number;
  /** GCRA theoretical arrival time per new recipient (by chatKey); entries in the past are dropped. */
  readonly recipientTat: ReadonlyMap<string, number>;
  /** The UTC day (days since the epoch) `sentToday` counts. */
  readonly day: number;
  readonly sentToday: number;
  /** Nothing goes before this: the jitter pause drawn after the last message. */
  readonly notBefore: number;
}

export const EMPTY_GOVERNOR_STATE: GovernorState = {
  sessionTat: 0,
  recipientTat: new Map(),
  day: 0,
  sentToday: 0,
  notBefore: 0,
};

/** What one decision needs besides the state. */
export interface GovernorInput {
  policy: SendPolicy;
  /** When the number was linked (epoch ms), or null: no warm-up. */
  linkedAt: number | null;
  /** Chats (by chatKey) that wrote to the number. */
  known: ReadonlySet<string>;
  candidates: readonly DispatchCandidate[];
  now: number;
  /** Uniform in [0, 1): draws the jitter pauses. */
  random: Random;
}

/**
 * One chat, whatever form the tenant or the engine wrote it in: "+15551234567",
 * "15551234567" and "15551234567@s.whatsapp.net" are the same person.
 */
export function chatKey(chat: string): string {
  const trimmed = chat.trim().toLowerCase();
  const user = trimmed.replace(/@(s\.whatsapp\.net|c\.us)$/, '');
  return user.replace(/^\+/, '');
}

/** The forms a chat may be stored in, for looking it up in the message table. */
export function chatForms(chat: string): string[] {
  const key = chatKey(chat);
  if (!/^[0-9]+$/.test(key)) return [chat];
  return [key, `+${key}`, `${key}@s.whatsapp.net`, `${key}@c.us`];
}

/** Groups are conversations the number joined, not cold contacts: the new-recipient rule does not apply. */
function isKnown(known: ReadonlySet<string>, key: string): boolean {
  return known.has(key) || key.endsWith('@g.us');
}

function utcDay(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

interface Gcra {
  /** Emission interval (ms). */
  interval: number;
  /** How far ahead of schedule a send may be (ms): (burst - 1) intervals. */
  tolerance: number;
}

function sessionGcra(policy: SendPolicy): Gcra | null {
  if (policy.perMinute <= 0) return null;
  const interval = 60_000 / policy.perMinute;
  const burst = Math.max(1, Math.floor((policy.perMinute * SESSION_BUCKET_SECONDS) / 60));
  return { interval, tolerance: (burst - 1) * interval };
}

function recipientGcra(policy: SendPolicy): Gcra | null {
  if (policy.newRecipientIntervalSeconds <= 0) return null;
  const interval = policy.newRecipientIntervalSeconds * 1000;
  return { interval, tolerance: (Math.max(1, policy.newRecipientBurst) - 1) * interval };
}

/** The daily cap in force at `at`, and the warm-up day if warming up. */
export function dailyCap(
  policy: SendPolicy,
  linkedAt: number | null,
  at: number,
): { cap: number; warmupDay: number | null } {
  if (policy.perDay <= 0) return { cap: Number.POSITIVE_INFINITY, warmupDay: null };
  if (linkedAt === null || policy.warmupDays <= 0) return { cap: policy.perDay, warmupDay: null };
  const elapsedDays = Math.floor(Math.max(0, at - linkedAt) / DAY_MS);
  if (elapsedDays >= policy.warmupDays) return { cap: policy.perDay, warmupDay: null };
  const day = elapsedDays + 1;
  return { cap: Math.max(1, Math.floor((policy.perDay * day) / (policy.warmupDays + 1))), warmupDay: day };
}

/** A rule that keeps a message from going before `until`. */
interface Hold {
  until: number;
  reason: string;
}

/** The latest of the holds that bind (the message waits for all of them). */
function latest(holds: readonly (Hold | null)[], now: number): Hold | null {
  let binding: Hold | null = null;
  for (const hold of holds) {
    if (hold && hold.until > now && (!binding || hold.until > binding.until)) binding = hold;
  }
  return binding;
}

/** The first moment a message to `key` may go at or after `at`, by each rule; null where a rule does not bind. */
function holdsAt(
  state: GovernorState,
  input: Pick<GovernorInput, 'policy' | 'linkedAt' | 'known'>,
  key: string,
  at: number,
): (Hold | null)[] {
  const { policy } = input;
  const session = sessionGcra(policy);
  const holds: (Hold | null)[] = [];
  if (session) {
    holds.push({
      until: Math.ceil(state.sessionTat - session.tolerance),
      reason: `session rate: ${policy.perMinute} messages per minute`,
    });
  }
  const recipient = recipientGcra(policy);
  if (recipient && !isKnown(input.known, key)) {
    const tat = state.recipientTat.get(key);
    if (tat !== undefined) {
      holds.push({
        until: Math.ceil(tat - recipient.tolerance),
        reason: `per-recipient rate: 1 message per ${policy.newRecipientIntervalSeconds} s to a new contact (burst ${Math.max(1, policy.newRecipientBurst)})`,
      });
    }
  }
  holds.push(dailyHold(state, input, at));
  if (policy.jitterMs > 0) {
    holds.push({
      until: state.notBefore,
      reason: `jitter: a random pause of up to ${policy.jitterMs} ms between messages`,
    });
  }
  return holds;
}

/** Holds until the day's count is below the cap: the next UTC midnight, or sooner if a warm-up step raises the cap. */
function dailyHold(state: GovernorState, input: Pick<GovernorInput, 'policy' | 'linkedAt'>, at: number): Hold | null {
  const { cap, warmupDay } = dailyCap(input.policy, input.linkedAt, at);
  const count = state.day === utcDay(at) ? state.sentToday : 0;
  if (count < cap) return null;
  const midnight = (utcDay(at) + 1) * DAY_MS;
  let until = midnight;
  if (warmupDay !== null && input.linkedAt !== null) {
    const nextStep = input.linkedAt + warmupDay * DAY_MS;
    if (nextStep < midnight && dailyCap(input.policy, input.linkedAt, nextStep).cap > count) until = nextStep;
  }
  const warmup = warmupDay !== null ? ` (warm-up day ${warmupDay} of ${input.policy.warmupDays})` : '';
  return { until, reason: `daily cap of ${cap} reached${warmup}` };
}

/** The state after a message to `key` went at `at`; `pause` is the jitter drawn for the next one. */
export function recordSend(
  state: GovernorState,
  input: Pick<GovernorInput, 'policy' | 'known'>,
  key: string,
  at: number,
  pause = 0,
): GovernorState {
  const session = sessionGcra(input.policy);
  const recipient = recipientGcra(input.policy);
  let recipientTat = state.recipientTat;
  if (recipient && !isKnown(input.known, key)) {
    const next = new Map(recipientTat);
    next.set(key, Math.max(next.get(key) ?? 0, at) + recipient.interval);
    recipientTat = next;
  }
  const day = utcDay(at);
  // A send dated before the counted day (clock stepped back, or a projection) does not reset today's count.
  const counted =
    day > state.day
      ? { day, sentToday: 1 }
      : { day: state.day, sentToday: state.sentToday + (day === state.day ? 1 : 0) };
  return {
    sessionTat: session ? Math.max(state.sessionTat, at) + session.interval : state.sessionTat,
    recipientTat,
    ...counted,
    notBefore: Math.max(state.notBefore, at + pause),
  };
}

/** Drops what no longer constrains anything at `now`, so the state stays as small as the recent new recipients. */
function prune(state: GovernorState, now: number): GovernorState {
  let stale = false;
  for (const tat of state.recipientTat.values()) if (tat <= now) stale = true;
  if (!stale) return state;
  const recipientTat = new Map([...state.recipientTat].filter(([, tat]) => tat > now));
  return { ...state, recipientTat };
}

/**
 * Decides for one session's candidates, oldest first. Releases are decided on
 * what was really sent; a held message's `heldUntil` is projected on a copy
 * that also counts the earlier held messages at their own projected times, so
 * a burst to one new contact shows 6 s, 12 s, 18 s... rather than all the same
 * moment. The projection ignores future jitter and new arrivals: the message
 * is looked at again then and may be held once more, never dropped.
 */
export function decide(
  state: GovernorState,
  input: GovernorInput,
): { decisions: DispatchDecision[]; state: GovernorState } {
  const { now, candidates, policy } = input;
  let real = state;
  let projected = state;
  const heldChats = new Map<string, number>();
  const decisions: DispatchDecision[] = [];
  for (const candidate of candidates) {
    const key = chatKey(candidate.chat);
    const behind = heldChats.get(key);
    const hold = behind === undefined ? latest(holdsAt(real, input, key, now), now) : null;
    if (behind === undefined && !hold) {
      const pause = policy.jitterMs > 0 ? Math.floor(input.random() * policy.jitterMs) : 0;
      real = recordSend(real, input, key, now, pause);
      projected = recordSend(projected, input, key, now, pause);
      decisions.push({ messageId: candidate.messageId, release: true });
      continue;
    }
    const projection = project(projected, input, key, Math.max(now, behind ?? now));
    projected = recordSend(projected, input, key, projection.until);
    heldChats.set(key, projection.until);
    decisions.push({
      messageId: candidate.messageId,
      release: false,
      heldUntil: new Date(projection.until),
      reason: projection.reason,
    });
  }
  return { decisions, state: prune(real, now) };
}

/**
 * The first moment at or after `from` at which every rule lets a message to
 * `key` go on the projected state (rules are re-checked after each wait: the
 * cap may bind once the rate lets go).
 */
function project(state: GovernorState, input: GovernorInput, key: string, from: number): Hold {
  let at = from;
  let reason = 'waiting for an earlier message to the same chat';
  for (let step = 0; step < 8; step++) {
    const hold = latest(holdsAt(state, input, key, at), at);
    if (!hold) break;
    at = hold.until;
    reason = hold.reason;
  }
  return { until: at, reason };
}
