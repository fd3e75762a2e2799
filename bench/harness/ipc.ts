import type { ChildProcess } from 'node:child_process';

/** Any server a bench starts in a child process -> the bench, once it listens (or could not start). */
export type ServerEvent = { type: 'ready'; grpcUrl: string; httpUrl?: string } | { type: 'failed'; message: string };

/** The bench -> a server it started. */
export type ServerCommand = { type: 'stop' };

/**
 * Narrows an IPC payload to our message shape. Both ends are the benches'
 * own code, so checking the discriminant is enough.
 */
export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && 'type' in value && typeof value.type === 'string';
}

/**
 * Sends a typed message to the parent process (no-op when there is none, as
 * when run by hand). Resolves once it is handed over, so a process may exit
 * right after without losing its last word.
 */
export function sendToParent<T extends { type: string }>(message: T): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

/** Sends a typed message to a child; the child may already be gone when a run is failing. */
export function sendToChild<T extends { type: string }>(child: ChildProcess, message: T): void {
  if (child.connected) child.send(message);
}
