/**
 * What each failover strategy promises, checked against one chaos result (measured from S3), as
 * issue 9 states it:
 *   region, full       the job finishes; nothing lost, nothing duplicated, nothing wrong;
 *   single             the job finishes (never hangs); the loss measured is covered by what the
 *                      consumers reported missing (records dropped for them, and input a dead
 *                      attempt consumed after its checkpoint), and the duplicates measured by
 *                      what they reported replayed. A bound, not an equality: input a dead
 *                      attempt consumed is missing from its restored state, but what it sent on
 *                      before it died was delivered (an unchained sink still has it). When only
 *                      sources were killed: no duplicates at all (a restored source resumes its
 *                      record positions, its consumers drop what they had).
 *   single-buffered    the same, nothing dropped, and nothing lost. A restarted inner task or sink
 *                      still loses the input its dead attempt consumed after its checkpoint (it was
 *                      deleted from the queue): only upstream in-flight logs (issue 16) replay it.
 */
import type { ChaosResult } from './runner';

/** Units that run a source of the chaos jobs (demo: generator; join: events, features). */
export const isSourceUnit = (unit: string): boolean => /^(generator|events|features)-/.test(unit);

export function verdict(r: ChaosResult): { ok: boolean; why: string[] } {
  const why: string[] = [];
  if (r.outcome !== 'FINISHED') why.push(`ended ${r.outcome}${r.error ? `: ${r.error.slice(0, 200)}` : ''}`);
  const killed = r.kills.flatMap((k) => k.units);
  const onlySources = killed.length > 0 && killed.every(isSourceUnit);
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
      if (onlySources && r.duplicated > 0) why.push(`${r.duplicated} events duplicated by source restarts`);
      if (r.schedule.strategy === 'single-buffered') {
        if (r.reportedDropped > 0) why.push(`${r.reportedDropped} records dropped under single-buffered`);
        if (r.lost > 0) why.push(`${r.lost} events lost under single-buffered (input a restarted unit's dead attempt had consumed after its checkpoint)`);
      }
      if (r.wrong > 0) why.push(`${r.wrong} wrong values`);
      break;
  }
  return { ok: why.length === 0, why };
}
