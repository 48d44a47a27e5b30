/**
 * What each failover strategy promises, checked against one chaos result (measured from S3):
 *   region, full       the job finishes; nothing lost, nothing duplicated, nothing wrong;
 *   single             the job finishes (never hangs); the loss measured equals what the job
 *                      reported (records dropped, plus input its restarted units never saw
 *                      again), and the duplicates measured equal the duplicates it reported;
 *   single-buffered    the job finishes; nothing lost; duplicates as reported.
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
      if (r.lost !== r.reportedDropped + r.reportedMissing) why.push(`${r.lost} events lost, ${r.reportedDropped} reported dropped and ${r.reportedMissing} reported missing`);
      if (r.duplicated !== r.reportedDuplicates) why.push(`${r.duplicated} events duplicated, ${r.reportedDuplicates} reported`);
      break;
    case 'single-buffered':
      if (r.lost !== r.reportedMissing) why.push(`${r.lost} events lost, ${r.reportedMissing} reported missing`);
      if (r.duplicated !== r.reportedDuplicates) why.push(`${r.duplicated} events duplicated, ${r.reportedDuplicates} reported`);
      break;
  }
  return { ok: why.length === 0, why };
}
