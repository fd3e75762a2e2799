import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../agent/engines/engine.js';
import { SandboxNetwork } from '../../agent/engines/sandbox-network.js';
import { readSendLog, SandboxSendLog } from '../../agent/engines/sandbox-send-log.js';
import { createSandboxEngine, type SandboxEngine } from '../../agent/engines/sandbox.engine.js';
import { derivedMessageId } from '../../agent/engines/whatsapp-format.js';
import { ManualScheduler } from '../../lib/timers.js';

const logger = pino({ level: 'silent' });
const OURS = '7d1c2f4e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';
const RECIPIENT = '15550001111';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function logFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'send-log-'));
  dirs.push(dir);
  return join(dir, 'nested', 'sends.jsonl');
}

/**
 * A worker process as far as the send log goes: its own network and its own
 * SandboxSendLog on the shared file, on one fake clock.
 */
function worker(time: ManualScheduler, path: string | undefined) {
  return createSandboxEngine({
    clock: time,
    scheduler: time,
    network: new SandboxNetwork(new SandboxSendLog(path)),
    receipts: { sentMs: 10, deliveredMs: 20, readMs: 30 },
  });
}

/** Links a session on `engine` (or resumes it from `authState`) and records its events. */
async function session(engine: SandboxEngine, authState: Uint8Array | null = null) {
  const events: EngineEvent[] = [];
  const opened = engine.openSession({ sessionId: 's1', authState, onEvent: (event) => events.push(event), logger });
  await opened.start();
  if (authState === null) {
    const qr = events.find((event) => event.kind === 'qr');
    if (qr?.kind !== 'qr') throw new Error('no QR code');
    opened.controls.scanQr(qr.payload, { phoneNumber: '15551234567' });
  }
  const checkpoint = () => {
    const last = events.filter((event) => event.kind === 'authCheckpoint').at(-1);
    if (last?.kind !== 'authCheckpoint') throw new Error('no checkpoint');
    return last.state;
  };
  const statuses = () => events.flatMap((event) => (event.kind === 'messageStatus' ? [event.status] : []));
  return { session: opened, events, checkpoint, statuses };
}

describe('sandbox send log', () => {
  it('sends a message id once: the repeat answers the same WhatsApp id, derived from ours, and sends nothing', async () => {
    const time = new ManualScheduler();
    const path = logFile();
    const { session: s } = await session(worker(time, path));

    const first = await s.sendText(RECIPIENT, 'hello', OURS);
    const again = await s.sendText(RECIPIENT, 'hello', OURS);

    expect(first.messageId).toBe(derivedMessageId(OURS, 16));
    expect(first.messageId).toMatch(/^3EB0[0-9A-F]{16}$/);
    expect(again.messageId).toBe(first.messageId);
    expect(readSendLog(path)).toEqual([
      {
        messageId: OURS,
        whatsappMessageId: first.messageId,
        sessionId: 's1',
        to: `${RECIPIENT}@s.whatsapp.net`,
        at: time.now().toISOString(),
      },
    ]);
  });

  it('holds across a restart: a new process on the same log does not send an id the old one sent', async () => {
    const time = new ManualScheduler();
    const path = logFile();
    const before = await session(worker(time, path));
    const { messageId } = await before.session.sendText(RECIPIENT, 'hello', OURS);
    // The process dies here: no stop, no goodbye; only the log file remains.

    const after = await session(worker(time, path), before.checkpoint());
    const resent = await after.session.sendText(RECIPIENT, 'hello', OURS);
    const fresh = await after.session.sendText(RECIPIENT, 'another', '00000000-0000-4000-8000-000000000001');

    expect(resent.messageId).toBe(messageId);
    expect(readSendLog(path).map((record) => record.messageId)).toEqual([OURS, '00000000-0000-4000-8000-000000000001']);
    expect(fresh.messageId).not.toBe(messageId);
  });

  it('sees sends of another live process that appended after it started (the session moved to it)', async () => {
    const time = new ManualScheduler();
    const path = logFile();
    const workerA = worker(time, path);
    const workerB = worker(time, path); // already running when A sends
    const onA = await session(workerA);
    await onA.session.sendText(RECIPIENT, 'hello', OURS);

    const onB = await session(workerB, onA.checkpoint());
    await onB.session.sendText(RECIPIENT, 'hello', OURS);

    expect(readSendLog(path)).toHaveLength(1);
  });

  it('still reports SENT, DELIVERED and READ for a repeated id, without delivering the message again', async () => {
    const time = new ManualScheduler();
    const path = logFile();
    const engine = worker(time, path);
    const sender = await session(engine);
    const recipientEvents: EngineEvent[] = [];
    const recipient = engine.openSession({
      sessionId: 'r1',
      authState: null,
      onEvent: (event) => recipientEvents.push(event),
      logger,
    });
    await recipient.start();
    const qr = recipientEvents.find((event) => event.kind === 'qr');
    if (qr?.kind !== 'qr') throw new Error('no QR code');
    recipient.controls.scanQr(qr.payload, { phoneNumber: RECIPIENT });

    await sender.session.sendText(RECIPIENT, 'hello', OURS);
    time.advance(30);
    await sender.session.sendText(RECIPIENT, 'hello', OURS);
    time.advance(30);

    expect(sender.statuses()).toEqual(['SENT', 'DELIVERED', 'READ', 'SENT', 'DELIVERED', 'READ']);
    expect(recipientEvents.filter((event) => event.kind === 'inbound')).toHaveLength(1);
  });

  it('without a file dedupes within the process, and a torn last line is ignored when read', async () => {
    const time = new ManualScheduler();
    const { session: s } = await session(worker(time, undefined));
    const first = await s.sendText(RECIPIENT, 'hello', OURS);
    expect((await s.sendText(RECIPIENT, 'hello', OURS)).messageId).toBe(first.messageId);

    const path = logFile();
    const log = new SandboxSendLog(path);
    log.record({ messageId: OURS, whatsappMessageId: 'WA', sessionId: 's1', to: RECIPIENT, at: 'now' });
    appendFileSync(path, '{"messageId":"cut-off');
    expect(readSendLog(path).map((record) => record.messageId)).toEqual([OURS]);
    expect(new SandboxSendLog(path).lookup(OURS)).toBe('WA');
  });
});
