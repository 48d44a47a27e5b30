/**
 * The AWS adapters against the emulator process (moto, or AWS_ENDPOINT_URL): the port contracts,
 * plus request counting and the emulator's concurrency. Every test uses its own table, bucket and
 * queues, so test files can run in parallel against one emulator.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig, withOneEndpoint, type SluiceConfig } from '../../lib/config';
import { billedCounts, createAwsClients, createAwsPorts, ensureInfrastructure, requestCounts, resetRequestCounts, SqsChannelTransport, type AwsClients } from '../../lib/aws';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { blobStoreContract } from '../contracts/blobs.contract';
import { channelTransportContract } from '../contracts/channels.contract';
import { metadataStoreContract } from '../contracts/metadata.contract';
import { uniqueName } from '../contracts/names';
import { MOTO_VERSION, REPO_ROOT, startEmulator, startEmulators } from '../../lib/local/emulator';

const opened: AwsClients[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

/** A config with its own table and bucket on the test endpoint. */
function freshConfig(): SluiceConfig {
  return loadConfig({ ...process.env, SLUICE_TABLE: uniqueName('tbl'), SLUICE_BUCKET: uniqueName('bkt') });
}

async function freshPorts() {
  const config = freshConfig();
  const ports = createAwsPorts(config);
  opened.push(ports.clients);
  await ensureInfrastructure(config, ports.clients);
  return ports;
}

describe('test environment', () => {
  it('sees the endpoint from the global setup in this forked worker', () => {
    expect(process.env.AWS_ENDPOINT_URL).toMatch(/^https?:\/\//);
    expect(process.env.AWS_ENDPOINT_URL).toBe(inject('awsEndpoint'));
  });
});

channelTransportContract('SQS', async () => {
  const config = freshConfig();
  const ports = createAwsPorts(config);
  opened.push(ports.clients);
  return ports.channels;
});
metadataStoreContract('DynamoDB', async () => (await freshPorts()).metadata);
blobStoreContract('S3', async () => (await freshPorts()).blobs);

describe('AWS adapters beyond the contract', () => {
  it('is idempotent when provisioning twice', async () => {
    const config = freshConfig();
    const clients = createAwsClients(config);
    opened.push(clients);
    await ensureInfrastructure(config, clients);
    await Promise.all([ensureInfrastructure(config, clients), ensureInfrastructure(config, clients)]);
    const ports = createAwsPorts(config);
    opened.push(ports.clients);
    expect(await ports.metadata.put('p', 's', { ok: true })).toBe(true);
    await ports.blobs.put('k', 'v');
    expect(await ports.blobs.head('k')).toEqual({ key: 'k', size: 1 });
  });

  it('counts every request per service', async () => {
    const { channels, metadata, blobs } = await freshPorts();
    const q = uniqueName('cnt');
    await channels.createQueues([q]);
    resetRequestCounts();
    // 25 messages: 3 SendMessageBatch calls (the queue URL is cached since createQueues).
    await channels.send(q, Array.from({ length: 25 }, (_, i) => ({ groupId: String(i), dedupId: String(i), body: 'x' })));
    const got = await channels.receive(q, { max: 10, waitSeconds: 1 });
    await channels.delete(q, got.map((m) => m.receipt));
    await metadata.put('p', 's', { a: 1 });
    await metadata.get('p', 's');
    await blobs.put('k', 'v');
    expect(requestCounts()).toEqual({ sqs: 5, dynamodb: 2, s3: 1, total: 8 });
  });

  it('counts what AWS bills beside the calls: 64 KiB chunks of SQS payload, DynamoDB request units by item size, S3 by class', async () => {
    const { channels, metadata, blobs } = await freshPorts();
    const q = uniqueName('bill');
    await channels.createQueues([q]);
    resetRequestCounts();
    // One SendMessageBatch of 3 × 60 KiB = 180 KiB: 1 call, billed as 3 requests; received in one call, billed by what it returns.
    const body = 'y'.repeat(60 * 1024);
    await channels.send(q, [0, 1, 2].map((i) => ({ groupId: String(i), dedupId: `d${i}`, body })));
    const got = await channels.receive(q, { max: 10, waitSeconds: 1 });
    expect(got).toHaveLength(3);
    expect(requestCounts().sqs).toBe(2);
    expect(billedCounts().sqsRequests).toBe(3 + 3);
    // A 10 KB item: 10 write units to put, 3 read units (4 KB each) to read strongly consistent.
    await metadata.put('bill', 'k', { v: 'z'.repeat(10_000) });
    await metadata.get('bill', 'k');
    await blobs.put('k', 'v');
    await blobs.get('k');
    await blobs.delete(['k']);
    expect(billedCounts()).toMatchObject({ dynamodbWriteUnits: 10, dynamodbReadUnits: 3, s3WriteRequests: 1, s3ReadRequests: 1 });
  });

  it('creates queues in FIFO high-throughput mode', async () => {
    const config = freshConfig();
    const clients = createAwsClients(config);
    opened.push(clients);
    const channels = new SqsChannelTransport(clients);
    const q = uniqueName('ht');
    await channels.createQueues([q]);
    const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: `${q}.fifo` }));
    const { Attributes } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }));
    expect(Attributes).toMatchObject({ FifoQueue: 'true', ContentBasedDeduplication: 'false', DeduplicationScope: 'messageGroup', FifoThroughputLimit: 'perMessageGroupId' });
  });

  it('serves concurrent long polls in parallel (the emulator is threaded)', async () => {
    const { channels } = await freshPorts();
    const queues = [uniqueName('lp'), uniqueName('lp'), uniqueName('lp'), uniqueName('lp')];
    await channels.createQueues(queues);
    const started = Date.now();
    // Four empty 2 s long polls at once: about 2 s if served in parallel, 8 s if one at a time.
    const results = await Promise.all(queues.map((q) => channels.receive(q, { max: 10, waitSeconds: 2 })));
    const elapsed = Date.now() - started;
    expect(results).toEqual([[], [], [], []]);
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    expect(elapsed).toBeLessThan(4_000);

    // A long poll on one queue does not delay a send and a receive on another.
    const polling = channels.receive(queues[0]!, { max: 1, waitSeconds: 3 });
    const t0 = Date.now();
    await channels.send(queues[1]!, [{ groupId: '0', dedupId: 'a', body: 'hi' }]);
    expect((await channels.receive(queues[1]!, { max: 1, waitSeconds: 1 })).map((m) => m.body)).toEqual(['hi']);
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(await polling).toEqual([]);
  });
});

/** CPU time of a process in seconds (ps: [[dd-]hh:]mm:ss, works on Linux and macOS). */
function cpuSeconds(pid: number): number {
  const raw = execFileSync('ps', ['-o', 'time=', '-p', String(pid)], { encoding: 'utf8' }).trim();
  const [days, clock] = raw.includes('-') ? raw.split('-') : ['0', raw];
  return Number(days) * 86_400 + clock!.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

describe('embedded emulator', () => {
  const tsxChild = (script: string, env: Record<string, string> = {}) =>
    spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const emulatorModule = JSON.stringify(join(REPO_ROOT, 'lib/local/emulator.ts'));

  it('starts on a free port, answers, and stops', async () => {
    const started = Date.now();
    const emulator = await startEmulator();
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(emulator.endpoint).toBe(`http://127.0.0.1:${emulator.port}`);
    expect((await fetch(`${emulator.endpoint}/moto-api/`)).ok).toBe(true);
    await emulator.stop();
    await expect(fetch(`${emulator.endpoint}/moto-api/`)).rejects.toThrow();
  });

  it('leaves a service given an endpoint of its own to it, and starts a moto process for each of the others', async () => {
    // The suite's own emulator set every service's variable: only Kinesis keeps one here.
    const names = ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_SQS', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_KINESIS'];
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    for (const n of names) delete process.env[n];
    process.env.AWS_ENDPOINT_URL_KINESIS = 'http://127.0.0.1:9';
    try {
      const { endpoint, endpoints, emulators } = await startEmulators();
      try {
        expect(Object.keys(endpoints).sort()).toEqual(['dynamodb', 's3', 'sqs']);
        expect(emulators).toHaveLength(3);
        expect(new Set(Object.values(endpoints)).size).toBe(3);
        // The common endpoint is one of the moto processes, never the given one.
        expect(Object.values(endpoints)).toContain(endpoint);
        for (const url of Object.values(endpoints)) expect((await fetch(`${url}/moto-api/`)).ok).toBe(true);
      } finally {
        await Promise.all(emulators.map((e) => e.stop()));
      }
    } finally {
      for (const n of names) {
        if (saved[n] === undefined) delete process.env[n];
        else process.env[n] = saved[n];
      }
    }
  });

  it('does not spin a core while a long poll waits behind a blocked message group', async () => {
    const emulator = await startEmulator();
    try {
      const config = loadConfig(withOneEndpoint(process.env, emulator.endpoint));
      const { channels, clients } = createAwsPorts(config);
      opened.push(clients);
      const q = uniqueName('spin');
      await channels.createQueues([q]);
      const empty = uniqueName('idle');
      await channels.createQueues([empty]);
      await channels.send(q, [1, 2].map((i) => ({ groupId: '0', dedupId: String(i), body: String(i) })));
      expect(await channels.receive(q, { max: 1, waitSeconds: 0, visibilityTimeoutSeconds: 60 })).toHaveLength(1);
      // The baseline: the same long poll on an empty queue, on the machine as busy as it is now.
      let before = cpuSeconds(emulator.pid);
      expect(await channels.receive(empty, { max: 1, waitSeconds: 3 })).toEqual([]);
      const idle = cpuSeconds(emulator.pid) - before;
      // Message 2 is visible but its group is blocked: stock moto busy-loops here for 3 s (about
      // 3 CPU seconds on a quiet machine); the patched one waits as on the empty queue.
      before = cpuSeconds(emulator.pid);
      expect(await channels.receive(q, { max: 1, waitSeconds: 3 })).toEqual([]);
      const blocked = cpuSeconds(emulator.pid) - before;
      expect(blocked - idle).toBeLessThan(1);
    } finally {
      await emulator.stop();
    }
  });

  it('dies with the process that started it, even on SIGKILL', async () => {
    const child = tsxChild(`const { startEmulator } = await import(${emulatorModule});
      const e = await startEmulator(); console.log(e.endpoint); setInterval(() => {}, 1000);`);
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (line: string) => resolve(line.trim()));
      child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    expect((await fetch(`${endpoint}/moto-api/`)).ok).toBe(true);
    child.kill('SIGKILL');
    let down = false;
    for (let i = 0; i < 50 && !down; i++) {
      await new Promise((r) => setTimeout(r, 100));
      down = await fetch(`${endpoint}/moto-api/`).then(() => false, () => true);
    }
    expect(down).toBe(true);
  });

  it('installs once when several processes ask at the same time (lock file)', async () => {
    // A fake venv whose "python" is slow and logs each call: the probe must run only once.
    const root = mkdtempSync(join(tmpdir(), 'sluice-venv-'));
    mkdirSync(join(root, '.venv', 'bin'), { recursive: true });
    const python = join(root, '.venv', 'bin', 'python');
    writeFileSync(python, `#!/bin/sh\necho call >> "${root}/calls.log"\nsleep 1\necho ${MOTO_VERSION}\n`);
    chmodSync(python, 0o755);
    const script = `const { ensureMotoInstalled } = await import(${emulatorModule});
      await ensureMotoInstalled({ root: ${JSON.stringify(root)} }); console.log('ok');`;
    const results = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<string>((resolve) => {
            const child = tsxChild(script);
            let out = '';
            child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
            child.once('exit', () => resolve(out.trim()));
          }),
      ),
    );
    expect(results).toEqual(['ok', 'ok', 'ok']);
    expect(readFileSync(join(root, 'calls.log'), 'utf8').trim().split('\n')).toEqual(['call']);
    expect(existsSync(join(root, '.venv', `.sluice-moto-${MOTO_VERSION}`))).toBe(true);
    expect(existsSync(join(root, '.sluice', 'moto-install.lock'))).toBe(false);
    rmSync(root, { recursive: true, force: true });
  });
});
