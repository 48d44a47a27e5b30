/**
 * What each failover strategy promises, checked against one chaos result (measured from S3), as
 * issue 9 states it:
 *   region, full       the job finishes; nothing lost, nothing duplicated, nothing wrong;
 *   single             the job finishes (never hangs); the loss measured equals the records its
 *                      producers dropped for the unavailable consumer (on the edges whose records
 *                      the output counts: the demo's generator, the join's behaviour events and
 *                      the join's output to its unchained sink; runner.ts countedTasks), and
 *                      the duplicates measured equal what consumers counted as regenerated (the
 *                      dead attempt's output after the checkpoint its producer restored from,
 *                      sent again). Input a dead attempt had consumed after its checkpoint is
 *                      replayed from the producers' in-flight logs (lib/runtime/replay.ts), so it
 *                      is neither lost nor counted; what no log holds any more (the producer died
 *                      with the consumer and restarted from a later checkpoint, or its log was
 *                      trimmed by a checkpoint the consumer did not restore from) is lost and its
 *                      consumers count it (unreplayed, on the same edges): loss = dropped +
 *                      unreplayed. Loss that no counter shows breaks the promise. When only sources
 *                      were killed: no duplicates at all (a restored source resumes its record
 *                      positions).
 *   single-buffered    the same, with nothing dropped: nothing lost.
 *   single-exact       the job finishes; nothing lost, nothing duplicated, nothing wrong (issue 16), and
 *                      no unit's attempt changes but the killed ones'.
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
    case 'single-exact':
      if (r.schedule.strategy === 'single-exact') {
        const killedUnits = new Set(killed.map((u) => u.split('#')[0]));
        const others = r.restarted.filter((u) => !killedUnits.has(u.split('#')[0]!));
        if (others.length > 0) why.push(`units restarted that were not killed: ${others.join(', ')}`);
      }
      if (r.lost > 0) why.push(`${r.lost} events lost`);
      if (r.duplicated > 0) why.push(`${r.duplicated} events duplicated`);
      if (r.wrong > 0) why.push(`${r.wrong} wrong values`);
      break;
    case 'single':
    case 'single-buffered':
      // Loss is allowed under single, if it is reported: dropped by a producer, or asked for in a
      // replay and no longer had by any producer (unreplayed). Loss in no counter breaks it.
      if (r.lost !== r.reportedDropped + (r.reportedUnreplayed ?? 0)) {
        why.push(`${r.lost} events lost, but the producers reported ${r.reportedDropped} dropped${r.reportedUnreplayed ? ` and the consumers ${r.reportedUnreplayed} unreplayed` : ''}`);
      }
      if (r.duplicated !== r.reportedDuplicates) why.push(`${r.duplicated} events duplicated, but the consumers reported ${r.reportedDuplicates} regenerated`);
      if (onlySources && r.duplicated > 0) why.push(`${r.duplicated} events duplicated by source restarts`);
      if (r.schedule.strategy === 'single-buffered') {
        if (r.reportedDropped > 0) why.push(`${r.reportedDropped} records dropped under single-buffered`);
        if (r.lost > 0) why.push(`${r.lost} events lost under single-buffered`);
      }
      if (r.wrong > 0) why.push(`${r.wrong} wrong values`);
      break;
  }
  return { ok: why.length === 0, why };
}
