/**
 * A barrier alignment held for a real minute against SQS on the emulator (moto in npm test,
 * LocalStack in its lane: vitest.localstack.config.ts includes test/integration/), four times the
 * queues' 15 s visibility timeout: what is held in flight meanwhile has its visibility extended
 * (ChangeMessageVisibility), so none comes back and nothing is lost or duplicated. Both transport
 * variants of the scenario run over the same minute (one real minute for the file): sub-partition
 * queues read by the subtask itself, and a task unit's multiplexed channels (one input queue per
 * unit, the path units take). The same scenario runs on the strict in-memory transport with a fake
 * clock in test/unit/long-alignment.test.ts.
 */
import { afterAll, describe, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createAwsPorts, ensureInfrastructure, type AwsClients } from '../../lib/aws';
import { longAlignmentScenario, type AlignmentTransport } from '../contracts/long-alignment.scenario';
import { uniqueName } from '../contracts/names';

const opened: AwsClients[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

describe('barrier alignment longer than the visibility timeout, on SQS', () => {
  it('holds its input for 60 s, on sub-partition queues and through a unit\'s multiplexed channels: the consumers survive, nothing lost, nothing duplicated, no receipt expired', async () => {
    const config = loadConfig({ ...process.env, SLUICE_TABLE: uniqueName('tbl'), SLUICE_BUCKET: uniqueName('bkt') });
    const ports = createAwsPorts(config);
    opened.push(ports.clients);
    await ensureInfrastructure(config, ports.clients);
    const variant = (transport: AlignmentTransport) =>
      longAlignmentScenario({ ...ports, jobId: uniqueName('job'), queuePrefix: uniqueName('la') }, () => new Promise((r) => setTimeout(r, 60_000)), transport);
    await Promise.all([variant('queues'), variant('mux')]);
  }, 300_000);
});
