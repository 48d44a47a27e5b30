/**
 * A job (`#/jobs/<id>`, `/checkpoints`, `/failures`): status and actions on top, then one of three
 * tabs — overview (totals, schedule, graph, units, availability flags), checkpoint history, and
 * failures with their recovery. Everything below the actions is redrawn at each poll.
 */
import { api, ApiError, scheduleInput, type CheckpointHistoryItem, type FailureView, type JobDetails, type UnitView } from './api';
import { badge, h, replace, table, type Child } from './dom';
import { age, bytes, clock, count, duration, time } from './format';
import { renderGraph, REGION_COLORS } from './graph';
import { poll } from './live';

export type JobTab = 'overview' | 'checkpoints' | 'failures';

const STRATEGY: Record<string, string> = {
  region: 'region failover',
  full: 'full restart',
  single: 'single-point (drops while down)',
  'single-buffered': 'single-point, buffered',
  'single-exact': 'single-point, exactly once',
};

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function stat(label: string, value: Child, testid?: string, note?: string): HTMLElement {
  return h('div', { class: 'stat', ...(testid ? { 'data-testid': testid } : {}) }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label' }, label), note ? h('div', { class: 'stat-note' }, note) : null);
}

function sumStats(u: UnitView, key: 'recordsIn' | 'recordsOut' | 'dropped'): number {
  return Object.values(u.stats ?? {}).reduce((n, s) => n + (s[key] ?? 0), 0);
}

function regionOf(details: JobDetails): Map<string, { id: string; index: number }> {
  const out = new Map<string, { id: string; index: number }>();
  details.regions.forEach((r, index) => r.subtasks.forEach((s) => out.set(s, { id: r.id, index })));
  return out;
}

function regionTag(id: string, index: number): HTMLElement {
  return h('span', { class: `region-tag rg-${index % REGION_COLORS.length}` }, id);
}

function overview(details: JobDetails): HTMLElement {
  const t = details.totals;
  // Per service, and `total` when the units report one.
  const { total: reqTotal, ...req } = t.requests ?? {};
  const now = Date.now();
  const regions = regionOf(details);
  const units = table(
    'units-table',
    ['Unit', 'Subtasks', 'Region', 'Attempt', 'Invocation', 'Status', 'Heartbeat', 'Records in', 'Records out', 'Dropped', 'Error'],
    details.units.map((u) => {
      const region = regions.get(u.subtasks[0] ?? '');
      const live = u.status === 'RUNNING' || u.status === 'STARTING';
      const late = live && u.heartbeatAt !== undefined && now - u.heartbeatAt > details.job.settings.heartbeatTimeoutMs / 2;
      return [
        h('td', { 'data-unit': u.unitId, 'data-attempt': u.attempt, 'data-status': u.status }, u.unitId),
        u.subtasks.join(', '),
        region ? regionTag(region.id, region.index) : '–',
        u.attempt,
        u.invocation,
        badge(u.status),
        h('td', late ? { class: 'warn' } : null, u.heartbeatAt !== undefined ? age(u.heartbeatAt, now) : '–'),
        count(sumStats(u, 'recordsIn')),
        count(sumStats(u, 'recordsOut')),
        count(sumStats(u, 'dropped')),
        h('td', { class: 'error-cell' }, u.error ?? ''),
      ];
    }),
    { numeric: [3, 4, 7, 8, 9] },
  );
  const flags = details.availability.map((a) => [
    String(a.subPartition).replace('#', '/'),
    a.available === false ? badge('UNAVAILABLE') : badge('AVAILABLE'),
    String(a.attempt ?? '–'),
    typeof a.updatedAt === 'number' ? age(a.updatedAt, now) : '–',
  ]);
  return h(
    'div',
    { 'data-testid': 'tab-content-overview' },
    h(
      'section',
      { class: 'stats' },
      stat('records in (sources)', count(t.recordsIn), 'total-in'),
      stat('records out (sinks)', count(t.recordsOut), 'total-out'),
      stat('dropped', count(t.dropped), 'total-dropped', 'bound for unavailable sub-partitions'),
      stat('duplicates discarded', count(t.duplicateRecords), 'total-duplicates', 'replayed input seen before'),
      stat('missing / replayed', `${count(t.missing)} / ${count(t.replayed)}`, 'total-missing'),
      stat('AWS requests', count(reqTotal ?? Object.values(req).reduce((a, b) => a + b, 0)), 'total-requests', Object.entries(req).map(([k, v]) => `${k} ${count(v)}`).join(' · ')),
    ),
    details.graph
      ? h(
          'section',
          { class: 'card' },
          h('h2', null, 'Graph'),
          h('p', { class: 'hint' }, `${plural(details.graph.tasks.length, 'task')} (operators chained inside a task pass records without a queue), ${plural(details.graph.edges.length, 'edge')} between tasks (one SQS FIFO queue per sub-partition), ${plural(details.regions.length, 'checkpoint region')}.`),
          renderGraph({ ...details, graph: details.graph }),
        )
      : h('section', { class: 'card' }, h('h2', null, 'Graph'), h('p', { class: 'error' }, `The job's graph cannot be built: ${details.graphError ?? 'unknown error'}`)),
    h('section', { class: 'card' }, h('h2', null, 'Units'), units),
    flags.length > 0 ? h('section', { class: 'card' }, h('h2', null, 'Sub-partition availability'), table('availability-table', ['Sub-partition', 'Flag', 'Consumer attempt', 'Changed'], flags)) : null,
  );
}

/** Each region's outcome in a checkpoint: completed, failed (with its fallback), pending, not kept. */
function regionOutcomes(c: CheckpointHistoryItem, details: JobDetails): HTMLElement {
  const failed = new Map((c.failedRegions ?? []).map((f) => [f.regionId, f]));
  const index = new Map(details.regions.map((r, i) => [r.id, i]));
  const chips: HTMLElement[] = [];
  const many = details.regions.length > 12;
  let quietCompleted = 0;
  for (const r of details.regions) {
    const f = failed.get(r.id);
    const cls = `outcome rg-${(index.get(r.id) ?? 0) % REGION_COLORS.length}`;
    if (f) {
      chips.push(
        h('span', { class: `${cls} outcome-failed`, title: `${f.reason}${f.message ? `: ${f.message}` : ''}${f.subtask ? ` (${f.subtask})` : ''}`, 'data-region': r.id, 'data-outcome': 'failed' }, `${r.id} ✗ ${f.reason} → ${f.fallback === null ? 'no fallback' : `falls back to #${f.fallback}`}`),
      );
    } else if (c.status === 'completed') {
      if (many) quietCompleted++;
      else chips.push(h('span', { class: `${cls} outcome-ok`, 'data-region': r.id, 'data-outcome': 'completed' }, `${r.id} ✓`));
    } else if (c.status === 'pending') chips.push(h('span', { class: `${cls} outcome-pending`, 'data-region': r.id, 'data-outcome': 'pending' }, `${r.id} …`));
    else if (!many) chips.push(h('span', { class: `${cls} outcome-lost`, 'data-region': r.id, 'data-outcome': 'not-kept' }, `${r.id} not kept`));
  }
  if (quietCompleted > 0) chips.push(h('span', { class: 'outcome outcome-ok' }, `${quietCompleted} regions ✓`));
  const missing = (c.failedRegionCount ?? 0) - (c.failedRegions?.length ?? 0);
  if (missing > 0) chips.push(h('span', { class: 'outcome outcome-failed' }, `+${missing} failed regions not listed`));
  return h('td', { class: 'outcomes' }, chips);
}

function checkpoints(details: JobDetails, history: CheckpointHistoryItem[]): HTMLElement {
  const done = history.filter((c) => c.status === 'completed');
  const failed = history.filter((c) => c.status === 'failed');
  const pending = history.filter((c) => c.status === 'pending');
  const latest = done.at(-1);
  const fallbacks = history.reduce((n, c) => n + (c.status === 'completed' ? (c.failedRegionCount ?? 0) : 0), 0);
  const rows = [...history].reverse().map((c) => [
    h('td', { 'data-checkpoint': c.checkpointId, 'data-status': c.status }, `#${c.checkpointId}`),
    badge(c.status),
    c.handle ?? '–',
    time(c.triggerTime),
    c.status === 'pending' ? h('span', { class: 'muted' }, `${duration(Date.now() - (c.triggerTime ?? Date.now()))} so far`) : duration(c.durationMs),
    c.regionsTotal !== undefined ? `${c.completedRegions ?? 0} / ${c.regionsTotal}` : '–',
    regionOutcomes(c, details),
    bytes(c.bytesWritten),
    bytes(c.bytesKept),
    h('td', { class: 'error-cell' }, [c.reason, c.message].filter(Boolean).join(': ')),
  ]);
  return h(
    'div',
    { 'data-testid': 'tab-content-checkpoints' },
    h(
      'section',
      { class: 'stats' },
      stat('completed', count(done.length), 'ckpt-completed'),
      stat('failed', count(failed.length), 'ckpt-failed'),
      stat('pending', count(pending.length), 'ckpt-pending'),
      stat('region fallbacks', count(fallbacks), 'ckpt-fallbacks', 'regions that kept an older checkpoint'),
      stat('latest completed', latest ? `#${latest.checkpointId}` : '–', 'ckpt-latest', latest ? `${age(latest.endTime)} · ${duration(latest.durationMs)} · ${bytes(latest.bytesKept)}` : 'none yet'),
      stat('schedule', details.schedule.description, 'ckpt-schedule', details.schedule.nextFireTimes[0] ? `next ${time(Date.parse(details.schedule.nextFireTimes[0]))}` : undefined),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Checkpoint history'),
      h('p', { class: 'hint' }, 'Newest first. Each region completes, commits and falls back on its own (handle regional); a failed region keeps its last good checkpoint.'),
      table('checkpoints-table', ['ID', 'Status', 'Handle', 'Triggered', 'Duration', 'Regions OK', 'Per-region outcome', 'Written', 'Kept', 'Reason'], rows, {
        numeric: [4, 7, 8],
        empty: 'No checkpoint yet: use “Checkpoint now”, or set a schedule.',
      }),
    ),
  );
}

function failures(details: JobDetails): HTMLElement {
  const t = details.totals;
  const list = [...details.failures].sort((a, b) => b.seq - a.seq);
  const recovered = list.filter((f) => f.recoveryMs !== null && f.recoveryMs !== undefined);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);
  const rows = list.map((f: FailureView) => [
    h('td', { 'data-failure': f.seq, 'data-status': f.status, 'data-unit': f.unitId }, `#${f.seq}`),
    h('td', null, f.unitId, f.alsoFailed?.length ? h('div', { class: 'hint' }, `also ${f.alsoFailed.map((a) => a.unitId).join(', ')}`) : null),
    `${f.attempt} → ${f.newAttempt ?? '–'}`,
    h('td', { class: 'error-cell reason' }, f.reason, f.strategy !== details.job.settings.failover ? h('div', { class: 'hint' }, STRATEGY[f.strategy] ?? f.strategy) : null),
    h('td', { title: time(f.failedAt) }, clock(f.failedAt)),
    h('td', { class: 'num', 'data-testid': 'detection' }, duration(f.detectionMs)),
    h('td', { class: 'num', 'data-testid': 'recovery' }, f.recoveryMs === null || f.recoveryMs === undefined ? (f.status === 'GAVE_UP' ? 'gave up' : f.status === 'SUPERSEDED' ? `see #${f.supersededBy}` : 'recovering…') : duration(f.recoveryMs)),
    h('td', { class: 'num' }, count(f.unitsRestarted), f.unavailableCount ? h('div', { class: 'hint' }, `${f.unavailableCount} sub-partitions down`) : null),
    f.restoreFrom === null ? 'fresh' : `#${f.restoreFrom}`,
    count(f.recordsDropped),
    count(f.recordsProcessed),
    badge(f.status),
  ]);
  return h(
    'div',
    { 'data-testid': 'tab-content-failures' },
    h(
      'section',
      { class: 'stats' },
      stat('failures', count(list.length), 'fail-count'),
      stat('mean detection', duration(mean(list.map((f) => f.detectionMs))), 'fail-detection', 'failure → supervisor saw it'),
      stat('mean recovery', duration(mean(recovered.map((f) => f.recoveryMs!))), 'fail-recovery', 'failure → available again'),
      stat('records dropped', count(t.dropped), 'fail-dropped', 'by producers while a consumer was down'),
      stat('duplicates discarded', count(t.duplicateRecords), 'fail-duplicates', 'replayed input already processed'),
      stat('missing / replayed', `${count(t.missing)} / ${count(t.replayed)}`, 'fail-missing', 'sequence gaps / input read again'),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Failures and recovery'),
      h('p', { class: 'hint' }, `Strategy of this job: ${STRATEGY[details.job.settings.failover] ?? details.job.settings.failover}. Detection: from the failure until the supervisor saw it; recovery: until every restarted unit had restored its state and was available again.`),
      table('failures-table', ['#', 'Unit', 'Attempt', 'Reason', 'Failed at', 'Detection', 'Recovery', 'Units restarted', 'Restored from', 'Dropped', 'Processed meanwhile', 'Status'], rows, {
        numeric: [5, 6, 7, 9, 10],
        empty: 'No unit has failed.',
      }),
    ),
  );
}

export function showJob(app: HTMLElement, token: number, jobId: string, tab: JobTab): void {
  const title = h('h1', { 'data-testid': 'job-id' }, jobId);
  const status = h('span', { 'data-testid': 'job-status-wrap' });
  const meta = h('p', { class: 'muted', 'data-testid': 'job-meta' });
  const message = h('p', { class: 'action-message', 'data-testid': 'action-message', role: 'status' });
  const tabs = h('nav', { class: 'tabs' });
  const content = h('div', { 'data-testid': 'job-content' }, h('p', { class: 'muted' }, 'Loading…'));
  let running = false;

  const say = (text: string, ok: boolean) => {
    replace(message, text);
    message.classList.toggle('error', !ok);
  };
  const act = async (button: HTMLButtonElement, what: () => Promise<string>) => {
    button.disabled = true;
    try {
      say(await what(), true);
    } catch (err) {
      say(err instanceof ApiError ? `${err.status ? `${err.status}: ` : ''}${err.message}` : String(err), false);
    } finally {
      button.disabled = !running;
    }
  };

  const checkpointNow = h('button', { type: 'button', 'data-testid': 'action-checkpoint' }, 'Checkpoint now');
  checkpointNow.addEventListener('click', () => act(checkpointNow, async () => `Checkpoint #${(await api.checkpointNow(jobId)).checkpointId} triggered.`));
  const scheduleText = h('input', { type: 'text', 'data-testid': 'reschedule-input', placeholder: 'e.g. rate(30 seconds), or off', 'aria-label': 'new checkpoint schedule' });
  const scheduleZone = h('input', { type: 'text', 'data-testid': 'reschedule-timezone', placeholder: 'UTC', class: 'narrow', 'aria-label': 'time zone of a cron schedule' });
  const reschedule = h('button', { type: 'button', 'data-testid': 'action-reschedule' }, 'Reschedule');
  reschedule.addEventListener('click', () =>
    act(reschedule, async () => {
      const view = await api.reschedule(jobId, scheduleInput(scheduleText.value, scheduleZone.value));
      return `Checkpoint schedule: ${view.description}${view.nextFireTimes[0] ? `, next at ${time(Date.parse(view.nextFireTimes[0]))}` : ''} (no restart).`;
    }),
  );
  const cancel = h('button', { type: 'button', class: 'danger', 'data-testid': 'action-cancel' }, 'Cancel job');
  cancel.addEventListener('click', () => {
    if (!window.confirm(`Cancel job ${jobId}? Its units stop and its queues are deleted; its checkpoints are kept.`)) return;
    void act(cancel, async () => `Job ${(await api.cancel(jobId)).job.status.toLowerCase()}.`);
  });
  const buttons = [checkpointNow, reschedule, cancel];
  buttons.forEach((b) => (b.disabled = true));

  replace(
    app,
    h('div', { class: 'page-head' }, h('div', null, h('a', { href: '#/', class: 'back' }, '← all jobs'), h('div', { class: 'title-row' }, title, status)), h('div', { class: 'job-actions' }, checkpointNow, h('span', { class: 'reschedule' }, scheduleText, scheduleZone, reschedule), cancel)),
    meta,
    message,
    tabs,
    content,
  );

  poll(token, async () => {
    let details: JobDetails;
    let history: CheckpointHistoryItem[];
    try {
      [details, { checkpoints: history }] = await Promise.all([api.job(jobId), api.checkpoints(jobId)]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        replace(content, h('p', { class: 'error' }, `No job '${jobId}': ${err.message}`));
        return;
      }
      throw err;
    }
    const j = details.job;
    running = j.status === 'RUNNING';
    buttons.forEach((b) => (b.disabled = !running));
    replace(status, badge(j.status, 'job-status'));
    replace(
      meta,
      [
        `${j.name}`,
        `created ${time(j.createdAt)}`,
        j.endedAt !== undefined ? `ended ${time(j.endedAt)} (ran ${duration(j.endedAt - j.createdAt)})` : `running for ${duration(Date.now() - j.createdAt)}`,
        `params ${Object.entries(j.params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`,
        `failover ${j.settings.failover}`,
        `checkpoints ${j.settings.checkpoint.handle}, ${details.schedule.description}`,
        ...(j.settings.runOn ? [`runs on ${j.settings.runOn}`] : []),
      ].join(' · '),
      j.error ? h('span', { class: 'error' }, ` · ${j.error}`) : null,
    );
    const link = (name: JobTab, label: string) =>
      h('a', { href: `#/jobs/${encodeURIComponent(jobId)}${name === 'overview' ? '' : `/${name}`}`, class: name === tab ? 'tab active' : 'tab', 'data-testid': `tab-${name}` }, label);
    replace(tabs, link('overview', 'Overview'), link('checkpoints', `Checkpoints (${history.length})`), link('failures', `Failures (${details.failures.length})`));
    replace(content, tab === 'overview' ? overview(details) : tab === 'checkpoints' ? checkpoints(details, history) : failures(details));
  });
}
