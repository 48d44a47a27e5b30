/** The job list (`#/`): every job, newest first, refreshed live. */
import { api } from './api';
import { badge, h, replace, table } from './dom';
import { age, time } from './format';
import { poll } from './live';

export function showJobList(app: HTMLElement, token: number): void {
  const summary = h('p', { class: 'muted', 'data-testid': 'jobs-summary' }, 'Loading…');
  const body = h('div');
  const registered = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  replace(
    app,
    h('div', { class: 'page-head' }, h('h1', null, 'Jobs'), h('a', { class: 'button primary', href: '#/submit', 'data-testid': 'open-submit' }, 'Submit a job')),
    h('section', { class: 'card' }, summary, body),
    h('section', { class: 'card' }, h('h2', null, 'Registered jobs'), h('p', { class: 'hint' }, 'What a submission can name; every task unit rebuilds the same graph from the name and the parameters.'), registered),
  );
  poll(token, async () => {
    const { jobs, definitions = [] } = await api.list();
    replace(
      registered,
      table(
        'definitions-table',
        ['Job', 'Description', 'Parameters (defaults)', ''],
        definitions.map((d) => [
          h('td', { class: 'strong' }, d.name),
          h('td', { class: 'wrap' }, d.description),
          h('td', { class: 'wrap params' }, Object.entries(d.params).map(([k, spec]) => h('code', { title: spec.description }, `${k}=${String(spec.default)}`))),
          h('a', { class: 'button', href: `#/submit/${encodeURIComponent(d.name)}` }, 'Submit…'),
        ]),
        { empty: 'No job is registered (examples/jobs/index.ts).' },
      ),
    );
    const byStatus = new Map<string, number>();
    for (const j of jobs) byStatus.set(j.status, (byStatus.get(j.status) ?? 0) + 1);
    replace(summary, jobs.length === 0 ? 'No jobs yet.' : `${jobs.length} job${jobs.length === 1 ? '' : 's'}: ${[...byStatus].map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ')}`);
    replace(
      body,
      table(
        'jobs-table',
        ['Job', 'Name', 'Status', 'Created', ''],
        jobs.map((j) => [
          h('td', { 'data-job': j.jobId }, h('a', { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, j.jobId)),
          j.name,
          badge(j.status),
          time(j.createdAt),
          h('span', { class: 'muted' }, age(j.createdAt)),
        ]),
        { empty: 'Nothing has been submitted yet: submit a registered job to start one.' },
      ),
    );
  });
}
