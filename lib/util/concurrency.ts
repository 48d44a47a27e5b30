/**
 * The one bounded-concurrency helper of the code base (a promise pool): union-state restore, the
 * failover fan-outs, control-message sends. Dependency-free so both planes can use it.
 */

export interface PoolStats {
  /** Most calls of `fn` that were running at the same time. */
  maxInFlight: number;
}

/**
 * Calls `fn(item, index)` for every item with at most `limit` calls running at once, and returns
 * the results in item order. On the first failure no new call starts; the calls already running
 * are awaited (nothing is left dangling) and the first error is thrown.
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  stats?: PoolStats,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency must be a positive integer, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let inFlight = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      inFlight++;
      if (stats && inFlight > stats.maxInFlight) stats.maxInFlight = inFlight;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      } finally {
        inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw firstError;
  return results;
}
