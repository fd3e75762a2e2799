/**
 * What every phase of a run shares: progress lines, and waits that end early
 * when the run is interrupted or a process it depends on fails.
 */

// Ctrl-C must still drop the database and stop the children: every wait
// races this, so an interrupt unwinds through the cleanup in main().
const interrupted = new Promise<never>((_, reject) => {
  const onSignal = (signal: NodeJS.Signals) => reject(new Error(`interrupted by ${signal}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
});
interrupted.catch(() => {});

/** Waits for `promise`, or fails first with whichever of `failures` (or an interrupt) comes first. */
export function guarded<T>(promise: Promise<T>, ...failures: Promise<never>[]): Promise<T> {
  return Promise.race([promise, interrupted, ...failures]);
}

/** One timestamped line on stderr, so stdout carries only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench:streams ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
