import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTROL_LOG, controlLogWriter, RUNTIME_LOG } from '../../../lib/local/log-files';
import { createLogger } from '../../../lib/observability/logger';
import { EmfMetrics } from '../../../lib/observability/metrics';
import { Metrics } from '../../../lib/observability/metric-names';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('local control-plane log files', () => {
  it("puts each JSON line in its job's control.log (log lines by jobId, EMF lines by job), the rest in runtime.log", () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-logs-'));
    dirs.push(dir);
    const write = controlLogWriter(dir);
    const logger = createLogger({ write });
    const metrics = new EmfMetrics({ write, immediate: true, disabled: false });
    logger.child({ jobId: 'demo-1' }).info('checkpoint 3 completed', { checkpointId: 3 });
    metrics.add(Metrics.UnitFailures, 1, { job: 'demo-1' });
    logger.child({ jobId: 'demo-2' }).warn('task unit x-0 attempt 0 failed');
    logger.info('no job here');
    const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const one = lines(join(dir, 'demo-1', CONTROL_LOG));
    expect(one.map((l) => l.message ?? 'emf')).toEqual(['checkpoint 3 completed', 'emf']);
    expect(one[1]).toMatchObject({ job: 'demo-1', UnitFailures: 1 });
    expect(lines(join(dir, 'demo-2', CONTROL_LOG)).map((l) => l.level)).toEqual(['WARN']);
    expect(lines(join(dir, RUNTIME_LOG)).map((l) => l.message)).toEqual(['no job here']);
  });
});
