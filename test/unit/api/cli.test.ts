import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  abortableSleep,
  followLogs,
  formatLogLine,
  formatSubtasks,
  helpFor,
  readLogs,
  REDRAW,
  renderGraph,
  watchStatus,
  CliError,
  formatAgo,
  formatTable,
  parseCli,
  regionOf,
  renderCheckpoints,
  renderJobs,
  renderStatus,
  runCli,
  signedHeaders,
  sigv4Signer,
  type ApiRequest,
} from '../../../bin/sluice';

const env = { SLUICE_API_URL: 'http://127.0.0.1:3000' };

function cliError(argv: string[], e: Record<string, string | undefined> = env): string {
  try {
    parseCli(argv, e);
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return (err as Error).message;
  }
  throw new Error(`expected '${argv.join(' ')}' to be refused`);
}

describe('CLI tables', () => {
  it('aligns columns, right-aligns numbers and shows missing cells as -', () => {
    const table = formatTable(
      ['UNIT', 'ATTEMPT', 'STATUS'],
      [
        ['generator-0', 0, 'RUNNING'],
        ['aggregate-1', 12, undefined],
      ],
    );
    expect(table.split('\n')).toEqual([
      'UNIT         ATTEMPT  STATUS',
      '-----------  -------  -------',
      'generator-0        0  RUNNING',
      'aggregate-1       12  -',
    ]);
  });

  it('renders jobs, a job status and checkpoint history', () => {
    expect(renderJobs({ jobs: [] })).toBe('no jobs');
    expect(renderJobs({ jobs: [{ jobId: 'demo-abc123', name: 'demo', status: 'RUNNING', createdAt: Date.UTC(2026, 0, 1, 10, 17, 23) }] }).split('\n')).toEqual([
      'JOB          NAME  STATUS   CREATED',
      '-----------  ----  -------  --------------------',
      'demo-abc123  demo  RUNNING  2026-01-01 10:17:23Z',
    ]);
    const now = Date.UTC(2026, 0, 1, 12);
    const status = renderStatus(
      {
        job: { jobId: 'demo-abc123', name: 'demo', status: 'RUNNING', createdAt: now - 60_000, params: { parallelism: 2 }, settings: { failover: 'single', checkpoint: { handle: 'regional' } } },
        schedule: { description: 'every 5 minutes', nextFireTimes: ['2026-01-01T12:05:00.000Z'] },
        units: [
          { unitId: 'source-0', attempt: 1, invocation: 3, status: 'RUNNING', heartbeatAt: now - 3000, stats: { 'source#0': { recordsIn: 10, recordsOut: 9, dropped: 1 } } },
          { unitId: 'sink-0', attempt: 0, status: 'STARTING', heartbeatAt: now - 300_000, stats: {} },
        ],
        regions: [{ id: 'r0' }, { id: 'r1' }],
        availability: [{ subPartition: 'e1-0', status: 'UNAVAILABLE', attempt: 1 }],
        totals: { recordsIn: 10, recordsOut: 9, dropped: 1, requests: { sqs: 5 } },
      },
      now,
    );
    expect(status).toContain('status     RUNNING');
    expect(status).toContain('checkpoints: regional handle, every 5 minutes (next 2026-01-01 12:05:00Z)');
    expect(status).toContain('regions    2');
    expect(status).toContain('totals     in 10   out 9   dropped 1   missing 0 (unreplayed 0)   replayed 0   duplicates discarded 0   regenerated 0   resent 0   requests sqs=5');
    expect(status).toMatch(/source-0\s+1\s+3\s+RUNNING\s+3s ago\s+10\s+9\s+1/);
    expect(status).toMatch(/sink-0\s+0\s+0\s+STARTING\s+5m ago\s+0\s+0\s+0/);
    expect(status).toMatch(/e1-0\s+UNAVAILABLE\s+1/);
    expect(renderCheckpoints({ jobId: 'j', checkpoints: [] })).toBe('no checkpoints for j');
    const history = renderCheckpoints(
      { jobId: 'j', checkpoints: [{ checkpointId: 7, status: 'failed', triggerTime: now, durationMs: 1500, regionsTotal: 4, completedRegions: 1, failedRegionCount: 3, reason: 'too-many-failed-regions' }] },
      { jobId: 'j', checkpointId: 7 },
    );
    expect(history).toContain('triggered checkpoint 7 of j');
    expect(history).toMatch(/7\s+failed\s+2026-01-01 12:00:00Z\s+1\.5 s\s+1\/4\s+3\s+too-many-failed-regions/);
    expect(formatAgo(now - 3 * 3_600_000, now)).toBe('3h ago');
  });
});

describe('CLI arguments', () => {
  it('builds the API requests of each command', () => {
    expect(parseCli(['jobs'], env).requests).toEqual([{ method: 'GET', path: '/jobs' }]);
    expect(parseCli(['status', 'demo-abc123'], env).requests).toEqual([{ method: 'GET', path: '/jobs/demo-abc123' }]);
    expect(parseCli(['cancel', 'demo-abc123'], env).requests).toEqual([{ method: 'DELETE', path: '/jobs/demo-abc123' }]);
    expect(parseCli(['checkpoints', 'j', '--now'], env).requests.map((r) => r.method)).toEqual(['POST', 'GET']);
    const submit = parseCli(
      ['submit', 'demo', '--param', 'records=2000', '--param', 'parallelism=2', '--param', 'label=x', '--failover', 'single', '--run-on', 'fargate', '--schedule', 'cron(0 * * * ? *)', '--tz', 'Europe/Berlin', '--checkpoint-timeout', '30'],
      env,
    );
    expect(submit.requests[0]).toEqual({
      method: 'POST',
      path: '/jobs',
      body: {
        job: 'demo',
        params: { records: 2000, parallelism: 2, label: 'x' },
        failover: 'single',
        runOn: 'fargate',
        checkpoint: { schedule: { kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'Europe/Berlin' }, timeoutSeconds: 30 },
      },
    });
    expect(parseCli(['schedule', 'j', 'rate(5 minutes)'], env).requests[0]!.body).toEqual({ schedule: 'rate(5 minutes)' });
    expect(parseCli(['schedule', 'j', 'off'], env).requests[0]!.body).toEqual({ schedule: null });
  });

  it('takes the URL from --api or SLUICE_API_URL and signs amazonaws.com URLs', () => {
    expect(parseCli(['jobs', '--api', 'http://localhost:9999'], env).api).toBe('http://localhost:9999');
    expect(parseCli(['jobs'], env)).toMatchObject({ api: 'http://127.0.0.1:3000', sigv4: false });
    expect(parseCli(['jobs'], { SLUICE_API_URL: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod' }).sigv4).toBe(true);
    expect(parseCli(['jobs', '--sigv4'], env).sigv4).toBe(true);
    expect(regionOf(new URL('https://abc123.execute-api.eu-west-1.amazonaws.com/prod'))).toBe('eu-west-1');
  });

  it.each([
    [[], /no command/],
    [['launch'], /unknown command 'launch'/],
    [['status'], /'status' needs a job id/],
    [['status', 'a', 'b'], /unexpected 'b'/],
    [['cancel', 'j', '--now'], /--now does not apply to 'cancel'/],
    [['submit', 'demo', '--param', 'records'], /--param takes name=value as one argument, got 'records' \(name=value, e\.g\. --param records=200000\)/],
    [['submit', 'demo', '--param', 'records', '5'], /--param takes name=value as one argument, got 'records': did you mean --param records=5\?/],
    [['submit', 'demo', '--param=records', '5'], /did you mean --param records=5\?/],
    [['submit', 'demo', '--param', '=5'], /--param must be name=value, got '=5'/],
    [['status', 'j', '--interval', '5'], /--interval needs --watch/],
    [['status', 'j', '--watch', '--interval', '0'], /--interval must be a number of seconds, at least 0\.2, got '0'/],
    [['graph', 'j', '--now'], /--now does not apply to 'graph' \(sluice graph --help\)/],
    [['logs'], /'logs' needs a job id/],
    [['logs', 'j', 'u', 'v'], /unexpected 'v'/],
    [['logs', 'j', '--api', 'http://x'], /--api does not apply to 'logs'/],
    [['submit', 'demo', '--params', '[1]'], /--params must be a JSON object/],
    [['submit', 'demo', '--tz', 'UTC'], /--tz needs --schedule/],
    [['submit', 'demo', '--checkpoint-timeout', 'soon'], /--checkpoint-timeout must be a number/],
    [['schedule', 'j'], /needs a job id and a schedule/],
    [['schedule', 'j', 'hourly'], /must be 'rate\(\.\.\.\)', 'cron\(\.\.\.\)' or off/],
    [['schedule', 'j', 'rate(5 minutes)', '--tz', 'UTC'], /--tz applies to cron schedules only/],
    [['jobs', '--bogus'], /Unknown option '--bogus'/],
    [['jobs', '--api', 'ftp://x'], /must be http\(s\)/],
  ])('refuses %j', (argv, message) => {
    expect(cliError(argv)).toMatch(message);
  });

  it('needs an API URL to run', async () => {
    await expect(runCli(parseCli(['jobs'], {}))).rejects.toThrow(/no API URL: pass --api URL or set SLUICE_API_URL/);
  });
});

describe('CLI runs', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('prints the API error with its field and exits 1', async () => {
    const calls: ApiRequest[] = [];
    const fake = async (_api: string, request: ApiRequest) => {
      calls.push(request);
      return { status: 400, body: { error: "parameter 'records' of job 'demo' must be at least 1, got 0", field: 'params.records' } };
    };
    const result = await runCli(parseCli(['submit', 'demo', '--param', 'records=0'], env), fake);
    expect(result).toEqual({ code: 1, output: "API error 400: parameter 'records' of job 'demo' must be at least 1, got 0 [field: params.records]" });
    expect(calls).toHaveLength(1);
  });

  it('triggers then lists checkpoints, and prints JSON with --json', async () => {
    const fake = async (_api: string, request: ApiRequest) =>
      request.method === 'POST'
        ? { status: 202, body: { jobId: 'j', checkpointId: 3 } }
        : { status: 200, body: { jobId: 'j', checkpoints: [{ checkpointId: 3, status: 'triggered', triggerTime: 0 }] } };
    const text = await runCli(parseCli(['checkpoints', 'j', '--now'], env), fake);
    expect(text.code).toBe(0);
    expect(text.output).toMatch(/^triggered checkpoint 3 of j\n\nID\s+STATUS/);
    const json = await runCli(parseCli(['checkpoints', 'j', '--json'], env), fake);
    expect(JSON.parse(json.output)).toEqual({ jobId: 'j', checkpoints: [{ checkpointId: 3, status: 'triggered', triggerTime: 0 }] });
  });

  it('computes SigV4 signatures right (AWS test suite vector get-vanilla)', async () => {
    const signer = await sigv4Signer({
      service: 'service',
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
      applyChecksum: false,
    });
    const signed = await signer.sign(
      { method: 'GET', protocol: 'https:', hostname: 'example.amazonaws.com', path: '/', query: {}, headers: { host: 'example.amazonaws.com' } },
      { signingDate: new Date('2015-08-30T12:36:00Z') },
    );
    expect(signed.headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  it('signs requests with SigV4 for execute-api', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
    vi.stubEnv('AWS_SESSION_TOKEN', '');
    vi.stubEnv('AWS_PROFILE', '');
    const url = new URL('https://abc123.execute-api.eu-west-1.amazonaws.com/prod/jobs');
    const a = await signedHeaders(url, 'POST', { 'content-type': 'application/json' }, '{"job":"demo"}');
    expect(a.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    expect(a['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(a).not.toHaveProperty('host');
    const b = await signedHeaders(url, 'POST', { 'content-type': 'application/json' }, '{"job":"other"}');
    expect(b.authorization!.slice(-64)).not.toBe(a.authorization!.slice(-64));
  });
});

describe('CLI help', () => {
  it('has a usage per command, and the command list names each', () => {
    const all = helpFor(['--help'])!;
    for (const c of ['jobs', 'submit', 'status', 'graph', 'checkpoints', 'schedule', 'cancel', 'logs']) expect(all).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(all).toContain('sluice <command> --help');
    const status = helpFor(['status', 'demo-1', '--help'])!;
    expect(status).toMatch(/^usage: sluice status <jobId> \[--watch \[--interval S\]\]\n/);
    expect(status).toMatch(/--watch\s+refresh in place until the job ends/);
    expect(status).toContain('global options:');
    expect(helpFor(['help', 'submit'])).toMatch(/--param name=value\s+a job parameter, one per --param, name and value in one argument/);
    // logs reads files: no API options.
    expect(helpFor(['logs', '-h'])).not.toContain('--api');
    expect(helpFor(['status', 'demo-1'])).toBeUndefined();
  });
});

describe('CLI status --watch', () => {
  const job = (status: string) => ({ job: { jobId: 'j', name: 'demo', status, createdAt: 0, params: {}, settings: {} }, units: [], regions: [], totals: {} });
  function io(isTTY: boolean, abortAfterSleeps = Infinity) {
    const writes: string[] = [];
    const stop = new AbortController();
    let sleeps = 0;
    return {
      writes,
      stop,
      io: {
        write: (t: string) => void writes.push(t),
        isTTY,
        signal: stop.signal,
        now: () => Date.UTC(2026, 0, 1, 12),
        sleep: async () => {
          if (++sleeps >= abortAfterSleeps) stop.abort();
        },
      },
    };
  }
  const request: ApiRequest = { method: 'GET', path: '/jobs/j' };

  it('redraws in place on a terminal until the job ends, and exits 0 when it finished', async () => {
    const statuses = ['RUNNING', 'RUNNING', 'FINISHED'];
    const calls: string[] = [];
    const t = io(true);
    const code = await watchStatus('http://api', request, false, 2000, async (_api, r) => (calls.push(r.path), { status: 200, body: job(statuses.shift()!) }), t.io);
    expect(code).toBe(0);
    expect(calls).toEqual(['/jobs/j', '/jobs/j', '/jobs/j']);
    expect(t.writes).toHaveLength(3);
    for (const w of t.writes) expect(w.startsWith(REDRAW)).toBe(true);
    expect(t.writes[0]).toContain('refreshing every 2 s (12:00:00Z); Ctrl-C stops watching, not the job');
    expect(t.writes[2]).toContain('status     FINISHED');
    expect(t.writes[2]).not.toContain('refreshing');
  });

  it('appends each refresh when not on a terminal; a failed job exits 1, an API error exits 1 with the error', async () => {
    const statuses = ['RUNNING', 'FAILED'];
    const t = io(false);
    expect(await watchStatus('http://api', request, false, 500, async () => ({ status: 200, body: job(statuses.shift()!) }), t.io)).toBe(1);
    expect(t.writes.some((w) => w.includes(REDRAW))).toBe(false);
    expect(t.writes[0]).toContain('refreshing every 0.5 s');
    const e = io(false);
    expect(await watchStatus('http://api', request, false, 500, async () => ({ status: 404, body: { error: "unknown job 'j'", field: 'id' } }), e.io)).toBe(1);
    expect(e.writes).toEqual(["API error 404: unknown job 'j' [field: id]\n"]);
  });

  it('stops on Ctrl-C while the job runs (exit 130) and leaves the last table', async () => {
    const t = io(true, 2);
    const code = await watchStatus('http://api', request, false, 1000, async () => ({ status: 200, body: job('RUNNING') }), t.io);
    expect(code).toBe(130);
    expect(t.writes.filter((w) => w.includes('status     RUNNING'))).toHaveLength(2);
    expect(t.writes.at(-1)).toBe('\n');
  });

  it('stops on Ctrl-C while a request hangs', async () => {
    const t = io(true);
    const hanging = watchStatus('http://api', request, false, 1000, () => new Promise(() => undefined), t.io);
    t.stop.abort();
    expect(await hanging).toBe(130);
  });

  it('abortableSleep ends early on abort', async () => {
    const stop = new AbortController();
    const slept = abortableSleep(60_000, stop.signal);
    stop.abort();
    await slept;
    expect(stop.signal.aborted).toBe(true);
  });
});

describe('CLI graph', () => {
  it('parses to the job request, and renders tasks, edges with their kind, regions and unavailable sub-partitions', () => {
    expect(parseCli(['graph', 'demo-1'], env).requests).toEqual([{ method: 'GET', path: '/jobs/demo-1' }]);
    const body = {
      job: { jobId: 'demo-1', name: 'demo', status: 'RUNNING', settings: { failover: 'single', checkpoint: { handle: 'regional' } } },
      graph: {
        tasks: [
          { id: 'generator', parallelism: 2, operators: [{ id: 'generator', kind: 'source' }, { id: 'parse', kind: 'map' }] },
          { id: 'agg', parallelism: 2, operators: [{ id: 'agg', kind: 'process' }, { id: 'out', kind: 'sink' }] },
        ],
        edges: [{ id: 'e0', from: 'generator', to: 'agg', kind: 'hash', pointwise: false, subPartitions: 2, channels: 4 }],
      },
      regions: [{ id: 'r0', subtasks: ['generator#0', 'generator#1', 'agg#0', 'agg#1'] }],
      units: [{ unitId: 'agg-1', subtasks: ['agg#1'], attempt: 2 }],
      availability: [{ subPartition: 'e0#1', edgeId: 'e0', consumer: 1, available: false, attempt: 1 }],
    };
    const text = renderGraph(body);
    expect(text).toMatch(/generator\s+generator \(source\) -> parse \(map\)\s+2/);
    expect(text).toMatch(/agg\s+agg \(process\) -> out \(sink\)\s+2/);
    expect(text).toMatch(/e0\s+generator ══hash══▶ agg\s+hash \(all-to-all\)\s+2\s+4\s+1: e0\/1 \(attempt 1\)/);
    expect(text).toContain('regions    1 checkpoint region(s)');
    expect(text).toMatch(/r0\s+generator\[0,1\] agg\[0,1\]\s+0,2/);
    expect(text).toContain('sub-partitions: 1 unavailable');
    expect(renderGraph({ ...body, graph: undefined, graphError: "unknown job 'demo'" })).toContain("graph not available: unknown job 'demo'");
    expect(formatSubtasks(['a#0', 'a#1', 'a#2', 'a#5', 'b#3'])).toBe('a[0..2,5] b[3]');
  });
});

describe('CLI logs', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 12, 0, s)).toISOString();
  const unitLine = (s: number, message: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ level: 'INFO', message, timestamp: at(s), service: 'sluice', jobId: 'demo-1', unitId: 'agg-0', attempt: 1, invocation: 2, ...extra });
  const emf = (s: number) =>
    JSON.stringify({ _aws: { Timestamp: Date.parse(at(s)), CloudWatchMetrics: [{ Namespace: 'Sluice', Dimensions: [['job', 'operator']], Metrics: [{ Name: 'RecordsIn', Unit: 'Count' }] }] }, job: 'demo-1', operator: 'agg', RecordsIn: 40 });

  function logDir(files: Record<string, string[]>): string {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-logs-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'demo-1'));
    for (const [name, lines] of Object.entries(files)) writeFileSync(join(dir, 'demo-1', `${name}.log`), lines.map((l) => `${l}\n`).join(''));
    return dir;
  }

  it('pretty-prints a JSON line (time, level, unit#attempt.invocation, message, ids), hides EMF unless asked, passes other lines through', () => {
    expect(formatLogLine(unitLine(1, 'restoring agg#0 from checkpoint 3', { checkpointId: 3, subtask: 'agg#0' }))).toBe(
      '12:00:01.000 INFO  agg-0#1.2            restoring agg#0 from checkpoint 3  checkpointId=3 subtask=agg#0',
    );
    const control = JSON.stringify({ level: 'WARN', message: 'task unit agg-0 attempt 1 failed', timestamp: at(2), plane: 'control', jobId: 'demo-1', unitId: 'agg-0', attempt: 1, detectionMs: 600 });
    expect(formatLogLine(control)).toBe('12:00:02.000 WARN  control              task unit agg-0 attempt 1 failed  unit=agg-0#1 detectionMs=600');
    expect(formatLogLine(emf(3))).toBeUndefined();
    expect(formatLogLine(emf(3), { metrics: true })).toBe('12:00:03.000 METRIC job=demo-1 operator=agg  RecordsIn=40');
    expect(formatLogLine('    at SubtaskRunner.run (lib/runtime/subtask.ts:10:5)')).toBe('    at SubtaskRunner.run (lib/runtime/subtask.ts:10:5)');
    expect(formatLogLine('')).toBeUndefined();
    expect(formatLogLine(JSON.stringify({ level: 'ERROR', message: 'unit failed', error: { name: 'Error', message: 'boom' } }), { source: 'agg-0' })).toMatch(/ERROR agg-0\s+unit failed  error=boom$/);
  });

  it('merges every file of the job by time, a line without a time staying after its own', async () => {
    const dir = logDir({
      'agg-0': [unitLine(1, 'a1'), unitLine(4, 'a4'), 'Error: boom', emf(5)],
      'generator-0': [JSON.stringify({ level: 'INFO', message: 'g2', timestamp: at(2), unitId: 'generator-0', attempt: 0 }), JSON.stringify({ level: 'INFO', message: 'g5', timestamp: at(5), unitId: 'generator-0', attempt: 0 })],
      control: [JSON.stringify({ level: 'INFO', message: 'c3', timestamp: at(3), plane: 'control', jobId: 'demo-1' })],
    });
    const out = await runCli(parseCli(['logs', 'demo-1', '--dir', dir], {}));
    expect(out.code).toBe(0);
    expect(out.output.split('\n').map((l) => l.replace(/^\d\d:\d\d:\d\d\.\d{3} \S+\s+\S+\s+/, ''))).toEqual(['a1', 'g2', 'c3', 'a4', 'Error: boom', 'g5']);
    const one = await runCli(parseCli(['logs', 'demo-1', 'control', '--dir', dir], {}));
    expect(one.output).toMatch(/INFO  control\s+c3$/);
    expect(readLogs({ jobId: 'demo-1', unit: 'agg-0', follow: false, metrics: true, dir }).at(-1)).toContain('METRIC job=demo-1 operator=agg  RecordsIn=40');
    expect(() => readLogs({ jobId: 'demo-1', unit: 'sink-9', follow: false, metrics: false, dir })).toThrow(/job 'demo-1' has no log of 'sink-9'; there are: agg-0, control, generator-0/);
    expect(() => readLogs({ jobId: 'demo-2', follow: false, metrics: false, dir })).toThrow(/no logs for job 'demo-2' under /);
  });

  it('follows: prints what is there, then lines appended (a partial line once complete) and files that appear, until stopped', async () => {
    const dir = logDir({ 'agg-0': [unitLine(1, 'first')] });
    const printed: string[] = [];
    const stop = new AbortController();
    const third = unitLine(3, 'third');
    const steps = [
      () => appendFileSync(join(dir, 'demo-1', 'agg-0.log'), `${unitLine(2, 'second')}\n${third.slice(0, 20)}`),
      () => appendFileSync(join(dir, 'demo-1', 'agg-0.log'), `${third.slice(20)}\n`),
      () => writeFileSync(join(dir, 'demo-1', 'sink-0.log'), 'plain text from a new unit\n'),
      () => stop.abort(),
    ];
    await followLogs(dir, { jobId: 'demo-1', follow: true, metrics: false }, { write: (l) => printed.push(l), signal: stop.signal, sleep: async () => steps.shift()!() }, 1);
    expect(printed.map((l) => l.replace(/^\d\d:\d\d:\d\d\.\d{3} \S+\s+\S+\s+/, ''))).toEqual(['first', 'second', 'third', 'plain text from a new unit']);
  });
});
