/**
 * The web UI in a real headless Chromium (Debian's `chromium`, driven by playwright-core) against
 * the local API server — the one `npm run dev` starts — with child-process task units on the AWS
 * emulator: a demo job is submitted through the submit form, a checkpoint taken with "Checkpoint
 * now" appears in the history, a killed unit's failure and recovery appear on the failures tab, and
 * the job is rescheduled and cancelled from its page. Screenshots of the pages go to
 * .sluice/screenshots/ (SLUICE_SCREENSHOTS=docs/ui refreshes the ones the docs show).
 * Every wait is on what the page shows, with generous limits; nothing sleeps for a fixed time.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalApi, type LocalApi } from '../../lib/api-server';
import { loadConfig } from '../../lib/config';
import { REPO_ROOT } from '../../lib/local/process-launcher';

/** Where Chromium may be: SLUICE_CHROMIUM, else Debian's package, else other usual names. */
const CANDIDATES = [process.env.SLUICE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
// Not docs/ui by default: a test run must not rewrite tracked files.
const SHOTS = join(REPO_ROOT, process.env.SLUICE_SCREENSHOTS?.trim() || join('.sluice', 'screenshots'));
/** Generous: the machine may be loaded by other tests; each wait ends as soon as the page shows it. */
const WAIT_MS = 240_000;

const suffix = randomBytes(3).toString('hex');
let api: LocalApi;
let context: BrowserContext;
let profile: string;
const pageErrors: string[] = [];

function findChromium(): string {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `the web UI test needs Chromium and found none at ${CANDIDATES.join(', ')}: install it with ` +
        '`apt-get install -y chromium` (Debian), or set SLUICE_CHROMIUM to a Chromium or Chrome binary',
    );
  }
  return found;
}

beforeAll(async () => {
  const executablePath = findChromium();
  expect(process.env.AWS_ENDPOINT_URL, 'the global setup sets AWS_ENDPOINT_URL').toBeTruthy();
  const config = loadConfig({ ...process.env, SLUICE_TABLE: `sluice-webui-${suffix}`, SLUICE_BUCKET: `sluice-webui-${suffix}`, SLUICE_QUEUE_PREFIX: `webui${suffix}` });
  api = await startLocalApi({ config, port: 0, supervisePollMs: 250 });
  profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
  // Playwright adds --headless and --user-data-dir (the fresh profile) itself; nothing reaches the network.
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(WAIT_MS);
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await context?.close();
  await api?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  return page;
}

/** Waits until `selector` is on the page; on a timeout, says what the page showed instead. */
async function see(page: Page, selector: string, what: string, hasText?: RegExp): Promise<void> {
  const locator = hasText ? page.locator(selector, { hasText }).first() : page.locator(selector).first();
  try {
    await locator.waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch (err) {
    await page.screenshot({ path: join(REPO_ROOT, '.sluice', `web-ui-failed-${suffix}.png`), fullPage: true }).catch(() => undefined);
    const shown = await page.locator('main').innerText().catch(() => '(no page)');
    throw new Error(`waited ${WAIT_MS / 1000} s for ${what} (${selector}${hasText ? ` with ${hasText}` : ''}); the page showed:\n${shown.slice(0, 3000)}\n${(err as Error).message}`);
  }
}

/** Waits until exactly `n` elements match `selector`. */
async function seeCount(page: Page, selector: string, n: number, what: string): Promise<void> {
  try {
    // Runs in the page (the page's CSP forbids evaluating strings; the test's own types have no DOM).
    type InPage = { document: { querySelectorAll(s: string): { length: number } } };
    await page.waitForFunction(([sel, want]) => (globalThis as unknown as InPage).document.querySelectorAll(sel).length === want, [selector, n] as const, { timeout: WAIT_MS, polling: 250 });
  } catch (err) {
    const shown = await page.locator('main').innerText().catch(() => '(no page)');
    throw new Error(`waited ${WAIT_MS / 1000} s for ${what} (${n} x ${selector}); the page showed:\n${shown.slice(0, 3000)}\n${(err as Error).message}`);
  }
}

async function count(page: Page, selector: string): Promise<number> {
  return page.locator(selector).count();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

describe('web UI in headless Chromium', () => {
  it('submits the demo, shows its graph, a checkpoint and a killed unit’s recovery, reschedules and cancels it', { timeout: 1_200_000 }, async () => {
    const page = await newPage();

    // The job list: / redirects to /ui/; nothing submitted yet; the registered jobs are listed.
    await page.goto(`${api.url}/`);
    expect(page.url()).toBe(`${api.url}/ui/`);
    await see(page, '[data-testid=jobs-summary]', 'the empty job list', /No jobs yet/);
    await see(page, '[data-testid=definitions-table] td', 'the registered jobs', /^demo$/);

    // Submit the demo through the form: small, rate-limited so it is still running at the end.
    await page.getByTestId('open-submit').click();
    await see(page, '[data-testid=submit-form]', 'the submit form');
    await page.getByTestId('submit-job').selectOption('demo');
    // Bad input: the API's error is shown and the parameter it names is marked; nothing starts.
    await page.getByTestId('param-parallelism').fill('0');
    await page.getByTestId('submit-button').click();
    await see(page, '[data-testid=submit-error]', 'the refusal', /Not submitted: parameter 'parallelism' of job 'demo' must be at least 1, got 0/);
    expect(await page.getByTestId('param-parallelism').getAttribute('class')).toContain('invalid');
    expect((await api.services.jobs.list()).length).toBe(0);
    await page.getByTestId('param-records').fill('6000');
    await page.getByTestId('param-parallelism').fill('2');
    await page.getByTestId('param-rate').fill('20');
    await page.getByTestId('submit-failover').selectOption('region');
    await shot(page, 'submit.png');
    await page.getByTestId('submit-button').click();

    await see(page, '[data-testid=job-status]', 'the job page');
    const jobId = (await page.getByTestId('job-id').innerText()).trim();
    expect(jobId).toMatch(/^demo-[0-9a-f]{6}$/);
    expect(page.url()).toBe(`${api.url}/ui/#/jobs/${jobId}`);
    expect(await page.getByTestId('job-status').innerText()).toBe('RUNNING');
    expect(await page.getByTestId('job-meta').innerText()).toMatch(/records=6000 .*failover region/);

    // The graph: two tasks of chained operators, the keyBy edge with its two sub-partitions, one region.
    await see(page, 'svg[data-testid=graph] g[data-task=generator]', 'the generator task in the graph');
    // (SVG has no innerText: its text content runs together.)
    expect(await page.locator('g[data-task=generator]').textContent()).toMatch(/^task generatorparallelism 2sourcegenerator↳ mapparse\s+chained#0/);
    expect(await page.locator('g[data-task=hourly-aggregate]').textContent()).toMatch(/^task hourly-aggregateparallelism 2processhourly-aggregate↳ sinks3-sink\s+chained#0/);
    expect(await page.locator('g[data-edge=e0]').textContent()).toMatch(/^keyBy \(hash\)e0 · 2 sub-partitions/);
    expect(await count(page, 'g[data-edge=e0] rect.sp-up')).toBe(2);
    expect(await count(page, 'svg[data-testid=graph] g.chip')).toBe(4);
    expect(await page.locator('.legend [data-region=r0]').innerText()).toBe('r0 (4)');
    // Units: every one running, with a heartbeat.
    await seeCount(page, '[data-testid=units-table] td[data-status=RUNNING]', 4, 'four units running');
    expect(await page.locator('[data-testid=units-table] tbody tr').first().innerText()).toMatch(/generator-0[\s\S]*ago/);
    await see(page, '[data-testid=total-in] .stat-value', 'records read', /^[1-9]/);
    await shot(page, 'job.png');

    // Checkpoint now: it appears in the history, completed by its one region, with duration and bytes.
    await page.getByTestId('action-checkpoint').click();
    await see(page, '[data-testid=action-message]', 'the trigger acknowledged', /Checkpoint #1 triggered/);
    await page.getByTestId('tab-checkpoints').click();
    await see(page, '[data-testid=checkpoints-table] td[data-checkpoint="1"][data-status=completed]', 'checkpoint 1 completed');
    const row = page.locator('[data-testid=checkpoints-table] tbody tr').first();
    expect(await row.locator('[data-outcome=completed][data-region=r0]').count()).toBe(1);
    expect(await row.innerText()).toMatch(/#1\s+completed\s+regional[\s\S]*\d+(\.\d+)? (ms|s)[\s\S]*1 \/ 1[\s\S]*\d+(\.\d+)? (B|KiB|MiB)/);
    expect(await page.getByTestId('ckpt-latest').innerText()).toMatch(/#1/);
    await shot(page, 'checkpoints.png');

    // Reschedule without a restart: the page says so, the dev server's scheduler has it.
    await page.getByTestId('reschedule-input').fill('rate(1 hour)');
    await page.getByTestId('action-reschedule').click();
    await see(page, '[data-testid=action-message]', 'the new schedule', /Checkpoint schedule: every hour/);
    expect(api.scheduler.get(jobId)?.schedule).toEqual({ kind: 'rate', seconds: 3600 });
    await see(page, '[data-testid=ckpt-schedule] .stat-value', 'the schedule on the page', /every hour/);

    // Kill one task unit's process; its failure and the recovery show on the failures tab.
    expect(await page.getByTestId('job-status').innerText(), 'the job must still run when a unit is killed').toBe('RUNNING');
    expect(api.runtime.launcher.kill(jobId, 'hourly-aggregate-1'), 'the unit process is running').toBe(true);
    await page.getByTestId('tab-failures').click();
    // The row of this failure (on a loaded machine a heartbeat timeout could add others).
    const killed = page.locator('[data-testid=failures-table] tbody tr', { has: page.locator('td[data-unit=hourly-aggregate-1]'), hasText: /SIGKILL/ });
    await see(page, '[data-testid=failures-table] td[data-unit=hourly-aggregate-1]', 'the failure of hourly-aggregate-1');
    try {
      await killed.locator('[data-testid=recovery]', { hasText: /^\d+(\.\d+)? (ms|s|min)/ }).waitFor({ timeout: WAIT_MS });
    } catch (err) {
      throw new Error(`waited for the recovery of hourly-aggregate-1 on the failures tab; the page showed:\n${await page.locator('main').innerText()}\n${(err as Error).message}`);
    }
    const failure = await killed.innerText();
    expect(failure).toMatch(/^#\d+\s+hourly-aggregate-1\s+0 → 1\s+process killed by SIGKILL/);
    expect(await killed.locator('[data-testid=detection]').innerText()).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    expect(failure).toMatch(/\s4\s+#1\s/); // region failover: all four units restarted, from checkpoint 1
    expect(await page.getByTestId('fail-count').innerText()).toMatch(/^[1-9]/);
    await see(page, '[data-testid=fail-recovery] .stat-value', 'the mean recovery', /^\d/);
    await shot(page, 'failures.png');

    // The overview shows the new attempts running again.
    await page.getByTestId('tab-overview').click();
    await seeCount(page, '[data-testid=units-table] td[data-status=RUNNING]:not([data-attempt="0"])', 4, 'four units running again at a new attempt');

    // The job list shows the job running.
    await page.goto(`${api.url}/ui/#/`);
    await see(page, `[data-testid=jobs-table] td[data-job="${jobId}"]`, 'the job in the list');
    expect(await page.locator('[data-testid=jobs-table] tbody tr').first().innerText()).toMatch(new RegExp(`${jobId}\\s+demo\\s+RUNNING`));
    expect(await page.getByTestId('jobs-summary').innerText()).toBe('1 job: 1 running');
    await shot(page, 'jobs.png');

    // Cancel from the job page (it asks first): units stop, the page says CANCELLED.
    await page.locator(`td[data-job="${jobId}"] a`).click();
    await see(page, '[data-testid=job-status]', 'the job page again', /RUNNING/);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByTestId('action-cancel').click();
    await see(page, '[data-testid=job-status]', 'the job cancelled', /CANCELLED/);
    expect(await page.getByTestId('action-cancel').isDisabled()).toBe(true);
    // The unit processes end after the page says CANCELLED (a loaded clean clone still had one a
    // moment later): waited for, on what the launcher sees, with a generous limit.
    const units = ['generator-0', 'generator-1', 'hourly-aggregate-0', 'hourly-aggregate-1'];
    const alive = () => units.filter((unit) => api.runtime.launcher.pid(jobId, unit) !== undefined);
    for (let until = Date.now() + 60_000; alive().length > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toEqual([]);

    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('npm run dev serves the UI beside the API', { timeout: 300_000 }, async () => {
    // The dev script as package.json has it, with a free port and its own table.
    const script = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.dev!;
    const [command, ...args] = script.split(/\s+/);
    expect(command).toBe('node');
    const tag = randomBytes(3).toString('hex');
    const dev = spawn(process.execPath, [...args, '--port', '0', '--quiet'], {
      cwd: REPO_ROOT,
      env: { ...process.env, SLUICE_TABLE: `sluice-webdev-${tag}`, SLUICE_BUCKET: `sluice-webdev-${tag}`, SLUICE_QUEUE_PREFIX: `webdev${tag}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          const m = /web UI: (http:\/\/\S+\/ui\/)/.exec(output);
          if (m) resolve(m[1]!);
        };
        dev.stdout!.on('data', onData);
        dev.stderr!.on('data', onData);
        void exited.then((code) => reject(new Error(`npm run dev exited (${code}) before it served the UI:\n${output}`)));
      });
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toContain('src="app.js"');
      const app = await fetch(new URL('app.js', url));
      expect(app.status).toBe(200);
      expect((await app.text()).length).toBeGreaterThan(10_000);
      const jobs = await fetch(new URL('../jobs', url));
      expect(jobs.status).toBe(200);
      expect(((await jobs.json()) as { definitions: { name: string }[] }).definitions.map((d) => d.name)).toContain('demo');
    } finally {
      dev.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
