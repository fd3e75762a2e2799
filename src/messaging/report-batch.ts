import { STATUS_RANK, type MessageStatus } from './message.entity.js';
import { chatId } from './chat-id.js';

/**
 * Pure preparation of a batch of message reports (no I/O): what each
 * statement of the batch's transaction needs, and how chats move.
 */

/** A message fact a worker reported for a session whose attempt it runs (already fenced), in the order it came. */
export interface MessageReport {
  sessionId: string;
  tenantId: string;
  /** When it happened (the agent's time, or when it was received). */
  at: Date;
  event:
    | { kind: 'messageSent'; messageId: string; whatsappMessageId: string }
    | { kind: 'messageFailed'; messageId: string; code: string; reason: string }
    /** A receipt; `messageId` is WhatsApp's. */
    | { kind: 'messageStatus'; messageId: string; status: string }
    /** `messageId` is WhatsApp's. */
    | { kind: 'inbound'; messageId: string; from: string; text: string };
}

/** Failures after which dispatching again is safe and may succeed (the agent says nothing went out). */
const RETRYABLE = new Set(['UNAVAILABLE', 'RESOURCE_EXHAUSTED']);

const earliest = (a: string | null, b: string) => (a === null || b < a ? b : a);

/** What a worker may report about an outbound message. */
const RECEIPT_STATUSES: readonly MessageStatus[] = ['SENT', 'DELIVERED', 'READ', 'FAILED'];

/** The receipts of one message in a batch, merged: the furthest status, and when each stage was reached. */
export interface MergedReceipt {
  session_id: string;
  wa: string;
  status: MessageStatus;
  rank: number;
  /** Every status reported, in rank order (one event each where it moves the message on). */
  reached: MessageStatus[];
  sent_at: string;
  delivered_at: string | null;
  read_at: string | null;
  failed_at: string | null;
}

/** The batch split by statement, each list in batch order (`index` is the position in the batch). */
export interface PreparedBatch {
  sent: { index: number; id: string; session_id: string; wa: string; at: string }[];
  failed: { index: number; id: string; session_id: string; retry: boolean; reason: string; at: string }[];
  receipts: MergedReceipt[];
  inbound: {
    index: number;
    id: string;
    tenant_id: string;
    session_id: string;
    wa: string;
    chat: string;
    text: string;
    at: string;
  }[];
}

export function prepareBatch(reports: readonly MessageReport[], newId: () => string): PreparedBatch {
  const batch: PreparedBatch = { sent: [], failed: [], receipts: [], inbound: [] };
  const receipts = new Map<string, MergedReceipt>();
  reports.forEach((report, index) => {
    const { event, sessionId } = report;
    const at = report.at.toISOString();
    switch (event.kind) {
      case 'messageSent':
        batch.sent.push({ index, id: event.messageId, session_id: sessionId, wa: event.whatsappMessageId, at });
        break;
      case 'messageFailed':
        batch.failed.push({
          index,
          id: event.messageId,
          session_id: sessionId,
          retry: RETRYABLE.has(event.code),
          reason: event.reason ? `${event.code}: ${event.reason}` : event.code,
          at,
        });
        break;
      case 'messageStatus': {
        const status = RECEIPT_STATUSES.find((s) => s === event.status);
        if (!status) break; // a status workers may report that no outbound message takes (ignored)
        const key = `${sessionId} ${event.messageId}`;
        const merged = receipts.get(key) ?? {
          session_id: sessionId,
          wa: event.messageId,
          status,
          rank: 0,
          reached: [],
          sent_at: at,
          delivered_at: null,
          read_at: null,
          failed_at: null,
        };
        const rank = STATUS_RANK[status];
        if (!merged.reached.includes(status)) merged.reached.push(status);
        if (rank > merged.rank) {
          merged.rank = rank;
          merged.status = status;
        }
        if (at < merged.sent_at) merged.sent_at = at;
        // A stage skipped (READ without DELIVERED) was reached no later than the one after it.
        if (status === 'DELIVERED' || status === 'READ') merged.delivered_at = earliest(merged.delivered_at, at);
        if (status === 'READ') merged.read_at = earliest(merged.read_at, at);
        if (status === 'FAILED') merged.failed_at = earliest(merged.failed_at, at);
        receipts.set(key, merged);
        break;
      }
      case 'inbound':
        batch.inbound.push({
          index,
          id: newId(),
          tenant_id: report.tenantId,
          session_id: sessionId,
          wa: event.messageId,
          chat: chatId(event.from),
          text: event.text,
          at,
        });
        break;
    }
  });
  batch.receipts = [...receipts.values()].map((r) => ({
    ...r,
    reached: r.reached.sort((a, b) => STATUS_RANK[a] - STATUS_RANK[b]),
  }));
  return batch;
}

/** What one chat row gets from a batch: the last message, and either reset-then-add or add to unread. */
export interface ChatChange {
  session_id: string;
  tenant_id: string;
  chat: string;
  last_message_id: string;
  last_activity_at: string;
  /** The session sent to the chat in this batch: unread starts again from `unread`. */
  reset: boolean;
  unread: number;
}

/** A change a chat sees: the session's first send of a message to it, or a new inbound message from it. */
export interface ChatEvent {
  /** Position in the batch. */
  index: number;
  kind: 'sent' | 'inbound';
  sessionId: string;
  tenantId: string;
  chat: string;
  messageId: string;
  at: Date;
}

/**
 * Walks what actually changed in batch order: a first send to a chat resets
 * its unread count, each new inbound message adds one.
 */
export function chatChanges(changes: readonly ChatEvent[]): ChatChange[] {
  const chats = new Map<string, ChatChange>();
  for (const change of [...changes].sort((a, b) => a.index - b.index)) {
    const key = `${change.sessionId} ${change.chat}`;
    const chat = chats.get(key) ?? {
      session_id: change.sessionId,
      tenant_id: change.tenantId,
      chat: change.chat,
      last_message_id: change.messageId,
      last_activity_at: change.at.toISOString(),
      reset: false,
      unread: 0,
    };
    chat.last_message_id = change.messageId;
    if (change.at.toISOString() > chat.last_activity_at) chat.last_activity_at = change.at.toISOString();
    if (change.kind === 'sent') {
      chat.reset = true;
      chat.unread = 0;
    } else {
      chat.unread += 1;
    }
    chats.set(key, chat);
  }
  return [...chats.values()];
}
