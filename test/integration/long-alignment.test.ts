/**
 * A barrier alignment held for a real minute against SQS on the emulator (moto in npm test,
 * LocalStack in its lane), four times the queues' 15 s visibility timeout: the gate keeps the held
 * messages' receipts valid with ChangeMessageVisibility, so none comes back and nothing is lost or
 * duplicated. The same scenario runs on the strict in-memory transport in test/unit/long-alignment.test.ts.
 */
import { afterAll, describe, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createAwsPorts, ensureInfrastructure, type AwsClients } from '../../lib/aws';
import { longAlignmentScenario } from '../contracts/long-alignment.scenario';
import { uniqueName } from '../contracts/names';

const opened: AwsClients[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

describe('barrier alignment longer than the visibility timeout, on SQS', () => {
  it('holds its input for 60 s: the consumer survives, nothing lost, nothing duplicated, no receipt expired', async () => {
    const config = loadConfig({ ...process.env, SLUICE_TABLE: uniqueName('tbl'), SLUICE_BUCKET: uniqueName('bkt') });
    const ports = createAwsPorts(config);
    opened.push(ports.clients);
    await ensureInfrastructure(config, ports.clients);
    await longAlignmentScenario({ ...ports, jobId: uniqueName('job'), queuePrefix: uniqueName('la') }, () => new Promise((r) => setTimeout(r, 60_000)));
  }, 240_000);
});
