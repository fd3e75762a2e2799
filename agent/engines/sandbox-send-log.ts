import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname } from 'node:path';

/** One message the sandbox network actually sent; a line of the send log. */
export interface SandboxSendRecord {
  /** Our message id, the dedupe key. */
  messageId: string;
  whatsappMessageId: string;
  sessionId: string;
  to: string;
  /** ISO time of the send, on the engine's clock. */
  at: string;
}

/**
 * Every message the simulated WhatsApp network took, by our message id: the
 * sandbox's stand-in for WhatsApp dropping a repeated message id. With a
 * file, the log outlives the process and is shared by every agent writing
 * it, so a message dispatched again after a crash (to this process or
 * another worker) is recognised and not sent twice; crash tests read the
 * file to count sends. Without a file it dedupes within the process only.
 *
 * Appends are one small write each on an O_APPEND file (whole lines, never
 * interleaved between processes on a local disk), without fsync: the log
 * has to survive a killed process, not a power cut.
 */
export class SandboxSendLog {
  /** Our id -> WhatsApp's id, for every send read from the file or made here. */
  private readonly sent = new Map<string, string>();
  /** How far the file has been read; bytes after it were appended since (by anyone). */
  private readOffset = 0;

  constructor(private readonly path?: string) {
    if (path === undefined) return;
    mkdirSync(dirname(path), { recursive: true });
    this.catchUp();
  }

  /** WhatsApp's id of an earlier send of `messageId` by any process on this log, or undefined. */
  lookup(messageId: string): string | undefined {
    const known = this.sent.get(messageId);
    if (known !== undefined || this.path === undefined) return known;
    // Another agent may have sent it since we last looked (it crashed, the message moved here).
    this.catchUp();
    return this.sent.get(messageId);
  }

  /** Records a send, before the network acts on it (a crash after this line never sends again). */
  record(record: SandboxSendRecord): void {
    this.sent.set(record.messageId, record.whatsappMessageId);
    if (this.path !== undefined) appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  /** Reads the lines appended since the last read; a half-written last line waits for the next read. */
  private catchUp(): void {
    const path = this.path as string;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= this.readOffset) return;
      const buffer = Buffer.alloc(size - this.readOffset);
      const read = readSync(fd, buffer, 0, buffer.length, this.readOffset);
      const text = buffer.subarray(0, read).toString('utf8');
      const complete = text.lastIndexOf('\n') + 1;
      for (const record of parseLines(text.slice(0, complete))) {
        this.sent.set(record.messageId, record.whatsappMessageId);
      }
      this.readOffset += Buffer.byteLength(text.slice(0, complete));
    } finally {
      closeSync(fd);
    }
  }
}

/** Every record in a send log file (for tests and tools); none when the file does not exist. */
export function readSendLog(path: string): SandboxSendRecord[] {
  try {
    return parseLines(readFileSync(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function parseLines(text: string): SandboxSendRecord[] {
  const records: SandboxSendRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value = JSON.parse(line) as Partial<SandboxSendRecord>;
      if (typeof value.messageId === 'string' && typeof value.whatsappMessageId === 'string') {
        records.push(value as SandboxSendRecord);
      }
    } catch {
      // A line cut by a crash mid-write: that send never reached the network.
    }
  }
  return records;
}
