/**
 * The record positions a consumer skipped on one channel lineage (its position jumped: counted as
 * missing), kept so it can tell a record it skipped from one it processed when a producer sends
 * either again below its position.
 *
 * Why: under single a source drops the records bound for an unavailable consumer and counts them
 * (`dropped`). If the source then restores from a checkpoint taken before those drops, its counter
 * goes back to the checkpoint's, and it reads the dropped records again and sends them. The
 * consumer is past them (it skipped them when they were dropped) and discards them as duplicates:
 * they are lost, and only the consumer still knows (chaos seed 70045: 37 to 631 events lost that
 * no producer counted). The consumer counts such records itself (unreplayed).
 *
 * Ranges are [from, to), sorted, disjoint; at most MAX_RANGES per lineage (one per outage of the
 * channel, typically): past that the oldest is forgotten, and a record sent again into it is taken
 * for a duplicate, as before.
 */

export type Range = [from: number, to: number];

const MAX_RANGES = 32;

/** Adds [from, to) to the ranges (merged with a neighbour it touches). */
export function addSkipped(ranges: Range[], from: number, to: number): void {
  if (to <= from) return;
  const last = ranges.at(-1);
  if (last && last[1] >= from && last[0] <= to) {
    last[0] = Math.min(last[0], from);
    last[1] = Math.max(last[1], to);
  } else {
    ranges.push([from, to]);
    ranges.sort((a, b) => a[0] - b[0]);
  }
  if (ranges.length > MAX_RANGES) ranges.splice(0, ranges.length - MAX_RANGES);
}

/**
 * How many of the positions [from, to) were skipped; those are taken out of the ranges (each
 * skipped position counts once, however often it is sent again).
 */
export function takeSkipped(ranges: Range[], from: number, to: number): number {
  let n = 0;
  for (let i = 0; i < ranges.length; i++) {
    const [a, b] = ranges[i]!;
    const lo = Math.max(a, from);
    const hi = Math.min(b, to);
    if (hi <= lo) continue;
    n += hi - lo;
    // What is left of the range on either side of the overlap.
    const rest: Range[] = [];
    if (a < lo) rest.push([a, lo]);
    if (hi < b) rest.push([hi, b]);
    ranges.splice(i, 1, ...rest);
    i += rest.length - 1;
  }
  return n;
}
