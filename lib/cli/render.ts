/** The CLI's output: API responses as readable tables and sentences. */

type Cell = string | number | boolean | null | undefined;

/** A plain-text table: a header row, a rule, the rows; numbers right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = (c: Cell) => (c === null || c === undefined ? '-' : String(c));
  const cells = rows.map((r) => headers.map((_, i) => text(r[i])));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** `2026-01-01 10:17:23Z` */
export function formatTime(ms: number | undefined | null): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** `4s ago`, `3m ago`, `2h ago` */
export function formatAgo(ms: number | undefined | null, now: number): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

export function formatDuration(ms: number | undefined | null): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`;
}

export function renderJobs(body: any): string {
  const jobs: any[] = body.jobs ?? [];
  if (jobs.length === 0) return 'no jobs';
  return formatTable(
    ['JOB', 'NAME', 'STATUS', 'CREATED'],
    jobs.map((j) => [j.jobId, j.name, j.status, formatTime(j.createdAt)]),
  );
}

function sumStats(stats: Record<string, any> | undefined, key: string): number {
  return Object.values(stats ?? {}).reduce((n, s) => n + (Number(s?.[key]) || 0), 0);
}

export function renderStatus(body: any, now: number = Date.now()): string {
  const { job, units = [], regions = [], availability = [], failures = [], totals = {}, schedule } = body;
  const lines = [
    `job        ${job.jobId} (${job.name})`,
    `status     ${job.status}${job.error ? `: ${job.error}` : ''}`,
    `created    ${formatTime(job.createdAt)}${job.endedAt ? `   ended ${formatTime(job.endedAt)}` : ''}`,
    `params     ${Object.entries(job.params ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `failover   ${job.settings?.failover ?? '-'}   runs on: ${job.settings?.runOn ?? 'default'}   checkpoints: ${job.settings?.checkpoint?.handle ?? '-'} handle, ${schedule?.description ?? 'off'}${
      schedule?.nextFireTimes?.[0] ? ` (next ${formatTime(Date.parse(schedule.nextFireTimes[0]))})` : ''
    }`,
    `regions    ${regions.length}`,
    `totals     in ${totals.recordsIn ?? 0}   out ${totals.recordsOut ?? 0}   dropped ${totals.dropped ?? 0}   missing ${totals.missing ?? 0} (unreplayed ${totals.unreplayed ?? 0})   replayed ${totals.replayed ?? 0}   duplicates discarded ${totals.duplicateRecords ?? 0}   regenerated ${totals.regenerated ?? 0}   resent ${totals.resent ?? 0}   requests ${Object.entries(totals.requests ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || '-'}`,
    '',
    formatTable(
      ['UNIT', 'ATTEMPT', 'INVOCATION', 'STATUS', 'HEARTBEAT', 'IN', 'OUT', 'DROPPED', 'ERROR'],
      units.map((u: any) => [
        u.unitId,
        u.attempt,
        u.invocation ?? 0,
        u.status,
        formatAgo(u.heartbeatAt, now),
        sumStats(u.stats, 'recordsIn'),
        sumStats(u.stats, 'recordsOut'),
        sumStats(u.stats, 'dropped'),
        u.error ?? '',
      ]),
    ),
  ];
  if (availability.length > 0) {
    lines.push(
      '',
      formatTable(
        ['SUB-PARTITION', 'STATUS', 'ATTEMPT'],
        availability.map((a: any) => [a.subPartition, a.status ?? (a.available === false ? 'UNAVAILABLE' : a.available === true ? 'AVAILABLE' : '-'), a.attempt]),
      ),
    );
  }
  if (failures.length > 0) {
    lines.push(
      '',
      formatTable(
        ['FAILURE', 'UNIT', 'ATTEMPT', 'STRATEGY', 'REASON', 'DETECTED', 'AVAILABLE AGAIN', 'UNITS RESTARTED', 'DROPPED', 'PROCESSED MEANWHILE'],
        failures.map((f: any) => [
          f.seq,
          f.unitId,
          `${f.attempt} -> ${f.newAttempt ?? '-'}`,
          f.strategy,
          f.reason,
          `${f.detectionMs} ms`,
          f.recoveryMs === null || f.recoveryMs === undefined ? 'not yet' : `${f.recoveryMs} ms`,
          f.unitsRestarted,
          f.recordsDropped,
          f.recordsProcessed,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

export function renderCheckpoints(body: any, triggered?: any): string {
  const rows: any[] = body.checkpoints ?? [];
  const head = triggered ? `triggered checkpoint ${triggered.checkpointId} of ${triggered.jobId}\n\n` : '';
  if (rows.length === 0) return `${head}no checkpoints for ${body.jobId}`;
  return (
    head +
    formatTable(
      ['ID', 'STATUS', 'TRIGGERED', 'DURATION', 'REGIONS OK', 'FAILED', 'REASON'],
      rows.map((c) => [
        c.checkpointId,
        c.status,
        formatTime(c.triggerTime),
        formatDuration(c.durationMs),
        c.regionsTotal !== undefined ? `${c.completedRegions ?? 0}/${c.regionsTotal}` : '-',
        c.failedRegionCount,
        c.reason ?? c.message ?? '',
      ]),
    )
  );
}

export function renderSchedule(body: any): string {
  const next = (body.nextFireTimes ?? []).map((t: string) => formatTime(Date.parse(t)));
  return [`job        ${body.jobId}`, `schedule   ${body.description}`, `next       ${next.join(', ') || '-'}`].join('\n');
}

export function renderSubmitted(body: any): string {
  const j = body.job;
  return [
    `submitted  ${j.jobId} (${j.name}), ${j.status}`,
    `params     ${Object.entries(j.params ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `follow it  sluice status ${j.jobId}`,
  ].join('\n');
}

export function renderCancelled(body: any): string {
  return `${body.job.jobId}: ${body.job.status}`;
}

/** `error (field)` from an API error body. */
export function renderApiError(status: number, body: any): string {
  const message = body && typeof body === 'object' && typeof body.error === 'string' ? body.error : JSON.stringify(body);
  return `API error ${status}: ${message}${body?.field ? ` [field: ${body.field}]` : ''}`;
}

/** `gen[0..3]`, `agg[0,2,5..7]`: subtask ids grouped by task, index runs compressed. */
export function formatSubtasks(ids: readonly string[]): string {
  const byTask = new Map<string, number[]>();
  for (const id of ids) {
    const hash = id.lastIndexOf('#');
    const task = id.slice(0, hash);
    byTask.set(task, [...(byTask.get(task) ?? []), Number(id.slice(hash + 1))]);
  }
  return [...byTask]
    .map(([task, indexes]) => {
      const sorted = [...indexes].sort((a, b) => a - b);
      const runs: string[] = [];
      for (let i = 0; i < sorted.length; ) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
        runs.push(j === i ? `${sorted[i]}` : j === i + 1 ? `${sorted[i]},${sorted[j]}` : `${sorted[i]}..${sorted[j]}`);
        i = j + 1;
      }
      return `${task}[${runs.join(',')}]`;
    })
    .join(' ');
}

const EDGE_ARROW: Record<string, string> = { forward: '─forward─▶', hash: '══hash══▶', rebalance: '~rebalance~▶', broadcast: '*broadcast*▶' };

/** How many regions are listed one by one; more are summarized. */
const REGIONS_LISTED = 20;

/** A job's graph from GET /jobs/{id}: tasks, edges, checkpoint regions, sub-partition availability. */
export function renderGraph(body: any): string {
  const { job, graph, graphError, regions = [], availability = [], units = [] } = body;
  const head = [`job        ${job.jobId} (${job.name}), ${job.status}`, `failover   ${job.settings?.failover ?? '-'}   checkpoints: ${job.settings?.checkpoint?.handle ?? '-'} handle`];
  if (!graph) return [...head, '', `graph not available: ${graphError ?? 'the API did not return one (an older API?)'}`].join('\n');
  const unavailable = availability.filter((a: any) => a.available === false || a.status === 'UNAVAILABLE');
  const attemptOf = new Map<string, number>();
  for (const u of units) for (const s of u.subtasks ?? []) attemptOf.set(s, u.attempt);
  const lines = [
    ...head,
    '',
    formatTable(
      ['TASK', 'OPERATORS (chained)', 'PARALLELISM'],
      graph.tasks.map((t: any) => [t.id, t.operators.map((o: any) => `${o.id} (${o.kind})`).join(' -> '), t.parallelism]),
    ),
    '',
    graph.edges.length === 0
      ? 'no edges between tasks (every operator chained into one task)'
      : formatTable(
          ['EDGE', 'FLOW', 'KIND', 'SUB-PARTITIONS', 'CHANNELS', 'UNAVAILABLE'],
          graph.edges.map((e: any) => {
            const down = unavailable.filter((a: any) => (a.edgeId ?? String(a.subPartition).split(/[#/]/)[0]) === e.id);
            return [
              e.id,
              `${e.from} ${EDGE_ARROW[e.kind] ?? `-${e.kind}->`} ${e.to}`,
              e.pointwise ? `${e.kind} (pointwise)` : `${e.kind} (all-to-all)`,
              e.subPartitions,
              e.channels,
              down.length === 0 ? 0 : `${down.length}: ${down.map((a: any) => `${e.id}/${a.consumer ?? String(a.subPartition).split(/[#/]/)[1]} (attempt ${a.attempt ?? '-'})`).join(', ')}`,
            ];
          }),
        ),
    '',
    `regions    ${regions.length} checkpoint region(s): subtasks joined by pointwise edges share one; an all-to-all edge joins all it touches`,
  ];
  if (regions.length > 0) {
    const shown = regions.slice(0, REGIONS_LISTED);
    lines.push(
      formatTable(
        ['REGION', 'SUBTASKS', 'ATTEMPTS'],
        shown.map((r: any) => [r.id, formatSubtasks(r.subtasks), [...new Set(r.subtasks.map((s: string) => attemptOf.get(s) ?? 0))].join(',')]),
      ),
    );
    if (regions.length > shown.length) lines.push(`... and ${regions.length - shown.length} more region(s) (sluice graph --json lists them all)`);
  }
  lines.push('', unavailable.length === 0 ? 'sub-partitions: all available' : `sub-partitions: ${unavailable.length} unavailable (records bound for them are dropped and counted under single-point recovery)`);
  return lines.join('\n');
}
