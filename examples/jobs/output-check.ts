/**
 * Reads a job's committed output (every object under output/<jobId>/) with the plain S3 client
 * and counts each record id: the exactly-once check of the end-to-end tests.
 */
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

export interface IdCheck {
  ok: boolean;
  records: number;
  missing: string[];
  duplicated: string[];
  unexpected: string[];
  files: number;
}

export async function readOutputLines(s3: S3Client, bucket: string, prefix: string): Promise<{ lines: string[]; files: number; markers: string[] }> {
  const lines: string[] = [];
  const markers: string[] = [];
  let files = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) {
      if (object.Key!.endsWith('/_SUCCESS')) {
        markers.push(object.Key!); // partition completion markers carry no records
        continue;
      }
      files++;
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key! }));
      for (const line of (await body.Body!.transformToString()).split('\n')) if (line) lines.push(line);
    }
    token = page.NextContinuationToken;
  } while (token);
  return { lines, files, markers };
}

export async function checkOutputIds(s3: S3Client, bucket: string, jobId: string, expected: Set<string>, idOf: (row: Record<string, unknown>) => string): Promise<IdCheck> {
  const { lines, files } = await readOutputLines(s3, bucket, `output/${jobId}/`);
  const seen = new Set<string>();
  const duplicated: string[] = [];
  const unexpected: string[] = [];
  for (const line of lines) {
    const id = idOf(JSON.parse(line) as Record<string, unknown>);
    if (seen.has(id)) duplicated.push(id);
    seen.add(id);
    if (!expected.has(id)) unexpected.push(id);
  }
  const missing = [...expected].filter((id) => !seen.has(id));
  return { ok: missing.length + duplicated.length + unexpected.length === 0, records: lines.length, missing, duplicated, unexpected, files };
}
