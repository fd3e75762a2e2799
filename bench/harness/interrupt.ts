/**
 * Waits that end early when the run is interrupted (Ctrl-C, SIGTERM) or a
 * process it depends on fails, so the run unwinds through its clean-up
 * (databases dropped, children stopped) instead of dying half-way.
 */

let interruption: Promise<never> | undefined;

/**
 * The same Ctrl-C reaches the bench more than once: from the terminal (the
 * whole process group) and relayed by the wrappers it runs under (npm, tsx).
 * Repeats this close to the first are that one signal.
 */
const REPEAT_WINDOW_MS = 1500;

/**
 * Rejects on the first SIGINT or SIGTERM. The listeners are installed on
 * first use only: a bench that never waits on anything (pure CPU work) keeps
 * the default, immediate Ctrl-C. A second signal, once the first has had
 * time to start the clean-up, ends the process at once (exit 130).
 */
export function interrupted(): Promise<never> {
  if (!interruption) {
    interruption = new Promise<never>((_, reject) => {
      let firstAtMs: number | undefined;
      const onSignal = (signal: NodeJS.Signals) => {
        if (firstAtMs === undefined) {
          firstAtMs = performance.now();
          reject(new Error(`interrupted by ${signal}`));
        } else if (performance.now() - firstAtMs > REPEAT_WINDOW_MS) {
          process.stderr.write(`interrupted again by ${signal}: exiting without cleaning up\n`);
          process.exit(130);
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    interruption.catch(() => {});
  }
  return interruption;
}

/** Waits for `promise`, or fails first with whichever of `failures` (or an interrupt) comes first. */
export function guarded<T>(promise: Promise<T>, ...failures: Promise<never>[]): Promise<T> {
  return Promise.race([promise, interrupted(), ...failures]);
}

/** `promise`, or a rejection with `message` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
