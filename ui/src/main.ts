/** The Sluice web UI: hash routes over the job API, each page polling while it is on screen. */
import { h, replace } from './dom';
import { showJob, type JobTab } from './job';
import { showJobList } from './list';
import { nextPage } from './live';
import { showSubmit } from './submit';

function route(): void {
  const app = document.getElementById('app')!;
  const token = nextPage();
  const hash = location.hash || '#/';
  const job = /^#\/jobs\/([^/]+)(?:\/(checkpoints|failures))?\/?$/.exec(hash);
  const submit = /^#\/submit(?:\/([^/]+))?$/.exec(hash);
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.getAttribute('data-nav') === (submit ? 'submit' : job ? '' : 'jobs')));
  if (job) {
    const id = decodeURIComponent(job[1]!);
    document.title = `${id} · Sluice`;
    showJob(app, token, id, (job[2] as JobTab | undefined) ?? 'overview');
  } else if (submit) {
    document.title = 'Submit a job · Sluice';
    showSubmit(app, submit[1] ? decodeURIComponent(submit[1]) : undefined).catch((err: unknown) => replace(app, h('h1', null, 'Submit a job'), h('p', { class: 'error' }, String(err instanceof Error ? err.message : err))));
  } else {
    document.title = 'Jobs · Sluice';
    showJobList(app, token);
  }
}

window.addEventListener('hashchange', route);
route();
