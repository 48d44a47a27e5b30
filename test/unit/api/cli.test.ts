import { afterEach, describe, expect, it, vi } from 'vitest';
import {
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
    expect(status).toContain('totals     in 10   out 9   dropped 1   missing 0   replayed 0   duplicates discarded 0   regenerated 0   resent 0   requests sqs=5');
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
    [['submit', 'demo', '--param', 'records'], /--param must be name=value/],
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
