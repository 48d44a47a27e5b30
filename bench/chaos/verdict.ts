/**
 * What each failover strategy promises, checked against one chaos result (measured from S3):
 *   region, full       the job finishes; nothing lost, nothing duplicated, nothing wrong;
 *   single             the job finishes (never hangs); the loss measured is covered by what the
 *                      consumers reported missing (records dropped for them, and input a dead
 *                      attempt consumed after its checkpoint), and the duplicates measured by
 *                      what they reported replayed. A bound, not an equality: input a dead
 *                      attempt consumed is missing from its restored state, but what it sent on
 *                      before it died was delivered (an unchained sink still has it).
 *   single-buffered    the same; and nothing is dropped.
 */
import type { ChaosResult } from './runner';

export function verdict(r: ChaosResult): { ok: boolean; why: string[] } {
  const why: string[] = [];
  if (r.outcome !== 'FINISHED') why.push(`ended ${r.outcome}${r.error ? `: ${r.error.slice(0, 200)}` : ''}`);
  switch (r.schedule.strategy) {
    case 'region':
    case 'full':
      if (r.lost > 0) why.push(`${r.lost} events lost`);
      if (r.duplicated > 0) why.push(`${r.duplicated} events duplicated`);
      if (r.wrong > 0) why.push(`${r.wrong} wrong values`);
      break;
    case 'single':
    case 'single-buffered':
      if (r.lost > r.reportedMissing) why.push(`${r.lost} events lost, more than the ${r.reportedMissing} records reported missing`);
      if (r.duplicated > r.reportedDuplicates) why.push(`${r.duplicated} events duplicated, more than the ${r.reportedDuplicates} records reported replayed`);
      if (r.schedule.strategy === 'single-buffered' && r.reportedDropped > 0) why.push(`${r.reportedDropped} records dropped under single-buffered`);
      if (r.wrong > 0) why.push(`${r.wrong} wrong values`);
      break;
  }
  return { ok: why.length === 0, why };
}
