import { ConnectError } from '@connectrpc/connect';

/** A server stream read in the background: every frame with when it came, and how the stream ended. */
export interface CollectedStream<T> {
  readonly frames: { at: number; value: T }[];
  /** Resolves when the stream ends: undefined when it ended cleanly, else its error. */
  readonly ended: Promise<{ error: ConnectError | undefined; at: number }>;
  /** Resolves with the first frame (after `from` frames) that satisfies `predicate`. */
  frame(predicate: (value: T) => boolean, from?: number): Promise<T>;
}

/** Reads `stream` until it ends, keeping every frame (the consumer never holds the stream back). */
export function collect<T>(stream: AsyncIterable<T>): CollectedStream<T> {
  const frames: { at: number; value: T }[] = [];
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  let finished = false;
  const ended = (async () => {
    try {
      for await (const value of stream) {
        frames.push({ at: performance.now(), value });
        wake();
      }
      return { error: undefined, at: performance.now() };
    } catch (error) {
      return { error: ConnectError.from(error), at: performance.now() };
    } finally {
      finished = true;
      wake();
    }
  })();
  return {
    frames,
    ended,
    async frame(predicate, from = 0) {
      for (;;) {
        const found = frames.slice(from).find((f) => predicate(f.value));
        if (found) return found.value;
        if (finished) throw new Error(`stream ended before the frame came (${frames.length} frames)`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}
