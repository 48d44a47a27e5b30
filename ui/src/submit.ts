/** Submitting a job (`#/submit`): a registered job, its parameters, the failover strategy and checkpoint settings. */
import { api, ApiError, scheduleInput, type JobDefinitionView, type SubmitBody } from './api';
import { h, replace } from './dom';
import { count } from './format';

const FAILOVER: [string, string][] = [
  ['region', 'region (default): restart the failed unit’s checkpoint regions from the last checkpoint; exactly once'],
  ['full', 'full: restart every unit from the last checkpoint; exactly once'],
  ['single', 'single: restart only the failed unit; its producers drop (and count) what is bound for it meanwhile'],
  ['single-buffered', 'single-buffered: restart only the failed unit; producers keep writing into its queues'],
  ['single-exact', 'single-exact: restart only the failed unit, exactly once (replay from upstream logs, determinants)'],
];

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
}

function paramInput(name: string, spec: JobDefinitionView['params'][string]): HTMLInputElement {
  const common = { name: `param-${name}`, 'data-testid': `param-${name}`, 'data-param': name };
  if (spec.type === 'boolean') return h('input', { ...common, type: 'checkbox', ...(spec.default === true ? { checked: true } : {}) });
  if (spec.type === 'number') {
    return h('input', { ...common, type: 'number', value: String(spec.default), step: spec.integer ? 1 : 'any', min: spec.min ?? null, max: spec.max ?? null, required: true });
  }
  return h('input', { ...common, type: 'text', value: String(spec.default) });
}

function readParam(input: HTMLInputElement, spec: JobDefinitionView['params'][string]): string | number | boolean {
  if (spec.type === 'boolean') return input.checked;
  if (spec.type === 'number') return input.value.trim() === '' ? Number.NaN : Number(input.value);
  return input.value;
}

export async function showSubmit(app: HTMLElement, preselect?: string): Promise<void> {
  replace(app, h('div', { class: 'page-head' }, h('h1', null, 'Submit a job')), h('p', { class: 'muted' }, 'Loading the registered jobs…'));
  const { definitions = [] } = await api.list();
  if (definitions.length === 0) {
    replace(app, h('h1', null, 'Submit a job'), h('p', { class: 'error' }, 'This API lists no registered jobs (an older API without definitions in GET /jobs?).'));
    return;
  }
  const jobSelect = h('select', { name: 'job', 'data-testid': 'submit-job' }, definitions.map((d) => h('option', { value: d.name, ...(d.name === preselect ? { selected: true } : {}) }, d.name)));
  const description = h('p', { class: 'hint', 'data-testid': 'submit-description' });
  const params = h('div', { class: 'grid' });
  let inputs: [string, HTMLInputElement, JobDefinitionView['params'][string]][] = [];
  const showParams = () => {
    const d = definitions.find((x) => x.name === jobSelect.value)!;
    replace(description, d.description);
    inputs = Object.entries(d.params).map(([name, spec]) => [name, paramInput(name, spec), spec]);
    const range = (spec: JobDefinitionView['params'][string]) =>
      spec.min !== undefined && spec.max !== undefined ? `, ${count(spec.min)} to ${count(spec.max)}` : spec.min !== undefined ? `, at least ${count(spec.min)}` : spec.max !== undefined ? `, at most ${count(spec.max)}` : '';
    replace(params, inputs.map(([name, input, spec]) => field(name, input, `${spec.description}; default ${typeof spec.default === 'number' ? count(spec.default) : String(spec.default)}${range(spec)}`)));
  };
  jobSelect.addEventListener('change', showParams);
  showParams();

  const failover = h('select', { name: 'failover', 'data-testid': 'submit-failover' }, FAILOVER.map(([v, text]) => h('option', { value: v }, text)));
  const schedule = h('input', { type: 'text', name: 'schedule', 'data-testid': 'submit-schedule', placeholder: 'off, rate(30 seconds), cron(0 * * * ? *)' });
  const timeZone = h('input', { type: 'text', name: 'timeZone', 'data-testid': 'submit-timezone', placeholder: 'UTC', list: 'time-zones' });
  const handle = h('select', { name: 'handle', 'data-testid': 'submit-handle' }, h('option', { value: 'regional' }, 'regional: a failed region fails only itself'), h('option', { value: 'global' }, 'global: any failure fails the checkpoint'));
  const heartbeat = h('input', { type: 'number', name: 'heartbeat', 'data-testid': 'submit-heartbeat', value: '10', min: 1, max: 900, step: 1 });
  const runOn = h('select', { name: 'runOn', 'data-testid': 'submit-runon' }, h('option', { value: '' }, 'the deployment’s default'), h('option', { value: 'lambda' }, 'Lambda'), h('option', { value: 'fargate' }, 'Fargate'));
  const error = h('p', { class: 'error', 'data-testid': 'submit-error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary', 'data-testid': 'submit-button' }, 'Submit');

  const form = h(
    'form',
    { class: 'card form', 'data-testid': 'submit-form', novalidate: true },
    h('h2', null, 'Job'),
    field('registered job', jobSelect),
    description,
    h('h2', null, 'Parameters'),
    params,
    h('h2', null, 'Failure recovery'),
    field('failover strategy', failover),
    h('div', { class: 'grid' }, field('heartbeat timeout (seconds)', heartbeat, 'a unit silent for longer has failed')),
    h('h2', null, 'Checkpoints'),
    h('div', { class: 'grid wide' }, field('schedule', schedule, 'empty: no periodic checkpoints (“Checkpoint now” on the job page still works)'), field('time zone of a cron', timeZone, 'IANA name, e.g. Europe/Berlin')),
    field('failure handle', handle),
    h('h2', null, 'Where units run (deployed)'),
    field('run on', runOn, 'locally every unit is a child process either way'),
    h('div', { class: 'actions' }, button),
    error,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(error);
    form.querySelectorAll('.invalid').forEach((el) => el.classList.remove('invalid'));
    const body: SubmitBody = {
      job: jobSelect.value,
      params: Object.fromEntries(inputs.map(([name, input, spec]) => [name, readParam(input, spec)])),
      failover: failover.value as SubmitBody['failover'],
      heartbeatTimeoutSeconds: Number(heartbeat.value),
      checkpoint: { handle: handle.value as 'global' | 'regional' },
      ...(runOn.value ? { runOn: runOn.value as 'lambda' | 'fargate' } : {}),
    };
    const sched = scheduleInput(schedule.value, timeZone.value);
    if (sched !== null) body.checkpoint!.schedule = sched;
    button.disabled = true;
    try {
      const res = await api.submit(body);
      location.hash = `#/jobs/${encodeURIComponent(res.job.jobId)}`;
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(0, String(err));
      replace(error, `Not submitted: ${e.message}`);
      const param = e.field?.startsWith('params.') ? e.field.slice('params.'.length) : undefined;
      const target = param ? inputs.find(([n]) => n === param)?.[1] : e.field?.startsWith('checkpoint.schedule') ? schedule : e.field === 'heartbeatTimeoutSeconds' ? heartbeat : undefined;
      target?.classList.add('invalid');
      target?.focus();
    } finally {
      button.disabled = false;
    }
  });
  const zones = h('datalist', { id: 'time-zones' }, ['UTC', 'Europe/Berlin', 'Europe/London', 'America/New_York', 'America/Los_Angeles', 'Asia/Tokyo', 'Asia/Kolkata'].map((z) => h('option', { value: z })));
  replace(app, h('div', { class: 'page-head' }, h('h1', null, 'Submit a job')), form, zones);
}
