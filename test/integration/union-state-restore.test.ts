/**
 * Union state restore against the emulator's S3 (moto, or AWS_ENDPOINT_URL): the real S3BlobStore,
 * a bucket of its own, 64 subtask objects restored in parallel and one at a time.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Json } from '../../lib/api/functions';
import { createAwsPorts, type AwsPorts } from '../../lib/aws';
import { loadConfig } from '../../lib/config';
import { UnionStateBackend, UnionStateError, restoreUnionState, unionStateKey, writeUnionSnapshot } from '../../lib/runtime/union-state';
import { uniqueName } from '../contracts/names';

const opened: AwsPorts[] = [];
afterAll(() => opened.forEach((p) => p.clients.destroy()));

async function freshBucket(): Promise<AwsPorts> {
  const config = loadConfig({ ...process.env, SLUICE_BUCKET: uniqueName('union') });
  const ports = createAwsPorts(config);
  opened.push(ports);
  await ports.clients.s3.send(new CreateBucketCommand({ Bucket: config.bucket }));
  return ports;
}

describe('union state restore on S3', () => {
  it('parallelism 64: parallel and sequential restores read the same union, in subtask order', async () => {
    const { blobs } = await freshBucket();
    expect(blobs.location).toMatch(/^s3:\/\/union-/);
    const parallelism = 64;
    const loc = { jobId: 'job-it', checkpointId: 12, operatorId: 'source' };
    const expected: Json[] = [];
    const handles = await Promise.all(
      Array.from({ length: parallelism }, async (_, i) => {
        const backend = new UnionStateBackend();
        // Partition offsets of a source: subtask i owns partitions i and i + 64.
        for (const p of [i, i + parallelism]) backend.state('offsets').add({ partition: p, offset: p * 1000 + 7, pad: 'x'.repeat(100) });
        return writeUnionSnapshot(blobs, { ...loc, subtaskIndex: i, parallelism }, backend);
      }),
    );
    for (let i = 0; i < parallelism; i++) for (const p of [i, i + parallelism]) expected.push({ partition: p, offset: p * 1000 + 7, pad: 'x'.repeat(100) });
    const totalBytes = handles.reduce((n, h) => n + h.bytes, 0);

    const parallel = await restoreUnionState(blobs, { ...loc, parallelism }, { concurrency: 16 });
    const sequential = await restoreUnionState(blobs, { ...loc, parallelism }, { mode: 'sequential' });
    const byKeys = await restoreUnionState(blobs, [...handles].reverse().map((h) => h.key));

    expect(parallel.states.offsets).toEqual(expected);
    expect(sequential.states).toEqual(parallel.states);
    expect(byKeys.states).toEqual(parallel.states);
    expect(parallel.stats).toMatchObject({ objects: 64, bytes: totalBytes, concurrency: 16 });
    expect(parallel.stats.maxInFlight).toBeLessThanOrEqual(16);
    expect(parallel.stats.maxInFlight).toBeGreaterThan(1);
    expect(sequential.stats).toMatchObject({ objects: 64, bytes: totalBytes, concurrency: 1, maxInFlight: 1 });

    // After a rescale to 3 subtasks, subtask 1 keeps the partitions p % 3 === 1: every one of them.
    const backend = new UnionStateBackend();
    backend.restore(parallel.states);
    const offsets = backend.state<{ partition: number; offset: number }>('offsets');
    offsets.replace(offsets.get().filter((e) => e.partition % 3 === 1));
    expect(offsets.get().map((e) => e.partition).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 2 * parallelism }, (_, p) => p).filter((p) => p % 3 === 1),
    );
  });

  it('names the missing object', async () => {
    const { blobs } = await freshBucket();
    const loc = { jobId: 'job-it', checkpointId: 3, operatorId: 'rules' };
    for (const i of [0, 1, 3]) await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: i, parallelism: 4 }, { rules: [i] });
    const err = await restoreUnionState(blobs, { ...loc, parallelism: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnionStateError);
    expect((err as UnionStateError).key).toBe(unionStateKey(loc, 2));
    expect((err as Error).message).toContain(`${blobs.location}/checkpoints/job-it/3/union/rules/2.json is missing (operator 'rules', subtask 2, checkpoint 3)`);
  });
});
