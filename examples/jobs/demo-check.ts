/**
 * Independent check of the demo job's output: reads every object under the job's output prefix
 * with the plain S3 client and compares each aggregate with the value computed from the input.
 */
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { JobParams } from '../../lib/api/registry';
import { aggregateKey, demoShape, expectedAggregates, type HourlyAggregate } from './demo';

export interface DemoCheck {
  ok: boolean;
  files: number;
  found: number;
  expected: number;
  /** Expected aggregates missing or with a different value. */
  wrong: string[];
  unexpected: string[];
  duplicated: string[];
  /** Objects whose hourly partition does not match their rows' hour. */
  misplaced: string[];
}

export async function checkDemoOutput(s3: S3Client, bucket: string, jobId: string, params: JobParams): Promise<DemoCheck> {
  const expected = expectedAggregates(demoShape(params));
  const rows = new Map<string, HourlyAggregate>();
  const duplicated: string[] = [];
  const misplaced: string[] = [];
  let files = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `output/${jobId}/`, ContinuationToken: token }));
    for (const object of page.Contents ?? []) {
      files++;
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key! }));
      for (const line of (await body.Body!.transformToString()).split('\n')) {
        if (!line) continue;
        const row = JSON.parse(line) as HourlyAggregate;
        const key = aggregateKey(row);
        if (rows.has(key)) duplicated.push(key);
        rows.set(key, row);
        if (!object.Key!.includes(`/dt=${row.hour.slice(0, 10)}/hour=${row.hour.slice(11, 13)}/`)) misplaced.push(object.Key!);
      }
    }
    token = page.NextContinuationToken;
  } while (token);
  const wrong = [...expected].filter(([k, want]) => JSON.stringify(rows.get(k)) !== JSON.stringify(want)).map(([k]) => k);
  const unexpected = [...rows.keys()].filter((k) => !expected.has(k));
  return {
    ok: wrong.length + unexpected.length + duplicated.length + misplaced.length === 0,
    files,
    found: rows.size,
    expected: expected.size,
    wrong,
    unexpected,
    duplicated,
    misplaced,
  };
}
