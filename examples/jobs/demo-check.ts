/**
 * Independent check of the demo job's output: reads every object under the job's output prefix
 * with the plain S3 client and compares each aggregate with the value computed from the input.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { readOutputLines } from './output-check';
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
  /** Hourly partitions with data but no _SUCCESS marker. */
  unmarked: string[];
}

export async function checkDemoOutput(s3: S3Client, bucket: string, jobId: string, params: JobParams): Promise<DemoCheck> {
  const expected = expectedAggregates(demoShape(params));
  const rows = new Map<string, HourlyAggregate>();
  const duplicated: string[] = [];
  const { lines, files, markers } = await readOutputLines(s3, bucket, `output/${jobId}/`);
  for (const line of lines) {
    const row = JSON.parse(line) as HourlyAggregate;
    const key = aggregateKey(row);
    if (rows.has(key)) duplicated.push(key);
    rows.set(key, row);
  }
  const marked = new Set(markers.map((k) => k.slice(`output/${jobId}/`.length, -'/_SUCCESS'.length)));
  const hours = new Set([...rows.values()].map((r) => `dt=${r.hour.slice(0, 10)}/hour=${r.hour.slice(11, 13)}`));
  const unmarked = [...hours].filter((h) => !marked.has(h));
  const wrong = [...expected].filter(([k, want]) => JSON.stringify(rows.get(k)) !== JSON.stringify(want)).map(([k]) => k);
  const unexpected = [...rows.keys()].filter((k) => !expected.has(k));
  return {
    ok: wrong.length + unexpected.length + duplicated.length + unmarked.length === 0,
    files,
    found: rows.size,
    expected: expected.size,
    wrong,
    unexpected,
    duplicated,
    unmarked,
  };
}
