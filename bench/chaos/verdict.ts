/**
 * What each failover strategy promises, checked against one chaos result (measured from S3), as
 * issue 9 states it:
 *   region, full       the job finishes; nothing lost, nothing duplicated, nothing wrong;
 *   single             the job finishes (never hangs); every event lost is counted by a consumer as
 *                      missing, and nothing more: the loss measured equals the records the
 *                      consumers of the counted edges never saw (position gaps; the edges whose
 *                      records the output counts one for one: the demo's generator, the join's
 *                      behaviour events and the join's output to its unchained sink; runner.ts
 *                      countedTasks), and the duplicates measured equal what those consumers counted
 *                      as regenerated (the dead attempt's output after the checkpoint its producer
 *                      restored from, sent again). A gap is a record dropped for the unavailable
 *                      consumer, or one it asked for in a replay that no log held any more (the
 *                      producer died with it and restarted from a later checkpoint, or its log was
 *                      trimmed by a checkpoint the consumer did not restore from): unreplayed, part
 *                      of missing. Input a dead attempt had consumed after its checkpoint is
 *                      replayed from the producers' in-flight logs (lib/runtime/replay.ts), so it
 *                      is neither lost nor counted. The producers' own drop counters are not the
 *                      loss (chaos seeds 10720, 10734: a source that shares its unit with a sink,
 *                      restored after a kill at the sink's final commit, forgets the drops of its
 *                      dead attempt and counts as dropped what it sends again to a consumer that
 *                      already has it); only the consumer knows which positions it never got.
 *                      The consumers' counts may overstate, on both sides alike: what a restarted
 *                      inner task lost at its input but its dead attempt had already sent on is in
 *                      the output once, counted missing there and regenerated downstream.
 *                      When only sources were killed: no duplicates at all (a restored source
 *                      resumes its record positions).
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
      // Loss is allowed under single if it is reported: a consumer counted each lost record
      // missing (dropped for it, or asked for in a replay and no longer had: unreplayed), and each
      // duplicate regenerated. Loss or duplicates in no counter break it. The counts may overstate
      // by one thing only, on both sides alike: records a restarted inner task lost at its input
      // (its producer restarted with it and dropped them) that its dead attempt had consumed and
      // sent on. Its consumer counted that output as coming again, and it never came: in the output
      // once, counted missing and regenerated (chaos seed 10721: 17 of each).
      const overMissing = r.reportedMissing - r.lost;
      const overRegenerated = r.reportedDuplicates - r.duplicated;
      if (overMissing < 0) why.push(`${r.lost} events lost, but the consumers reported ${r.reportedMissing} missing${r.reportedUnreplayed ? ` (${r.reportedUnreplayed} unreplayed)` : ''}`);
      if (overRegenerated < 0) why.push(`${r.duplicated} events duplicated, but the consumers reported ${r.reportedDuplicates} regenerated`);
      if (overMissing >= 0 && overRegenerated >= 0 && overMissing !== overRegenerated) {
        why.push(
          overMissing > overRegenerated
            ? `${r.lost} events lost, but the consumers reported ${r.reportedMissing} missing (${overMissing} more; ${overRegenerated} regenerated records did not come again)`
            : `${r.duplicated} events duplicated, but the consumers reported ${r.reportedDuplicates} regenerated (${overRegenerated} more; ${overMissing} missing records were not lost)`,
        );
      }
      if ((r.reportedUnreplayed ?? 0) > r.reportedMissing) why.push(`${r.reportedUnreplayed} unreplayed is more than the ${r.reportedMissing} missing it is part of`);
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
