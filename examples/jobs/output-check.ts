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
  /**
   * Where the duplicates are: each pair of files (first seen in, seen again in) with how many ids
   * the two share, most first. Names the transactions (`part-<subtask>-c<checkpoint>-a<attempt>`)
   * that committed the same records.
   */
  duplicatedIn: { first: string; again: string; ids: number }[];
}

export async function readOutputLines(s3: S3Client, bucket: string, prefix: string): Promise<{ lines: string[]; files: number; markers: string[]; fileOf: string[] }> {
  const lines: string[] = [];
  const markers: string[] = [];
  /** The object each line came from (same index as `lines`). */
  const fileOf: string[] = [];
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
      for (const line of (await body.Body!.transformToString()).split('\n')) {
        if (!line) continue;
        lines.push(line);
        fileOf.push(object.Key!);
      }
    }
    token = page.NextContinuationToken;
  } while (token);
  return { lines, files, markers, fileOf };
}

export async function checkOutputIds(s3: S3Client, bucket: string, jobId: string, expected: Set<string>, idOf: (row: Record<string, unknown>) => string): Promise<IdCheck> {
  const prefix = `output/${jobId}/`;
  const { lines, files, fileOf } = await readOutputLines(s3, bucket, prefix);
  const seenIn = new Map<string, string>();
  const duplicated: string[] = [];
  const unexpected: string[] = [];
  const pairs = new Map<string, number>();
  lines.forEach((line, i) => {
    const id = idOf(JSON.parse(line) as Record<string, unknown>);
    const file = fileOf[i]!.slice(prefix.length);
    const first = seenIn.get(id);
    if (first !== undefined) {
      duplicated.push(id);
      const pair = `${first}\n${file}`;
      pairs.set(pair, (pairs.get(pair) ?? 0) + 1);
    } else {
      seenIn.set(id, file);
    }
    if (!expected.has(id)) unexpected.push(id);
  });
  const missing = [...expected].filter((id) => !seenIn.has(id));
  const duplicatedIn = [...pairs].map(([pair, ids]) => {
    const [first, again] = pair.split('\n') as [string, string];
    return { first, again, ids };
  });
  duplicatedIn.sort((a, b) => b.ids - a.ids);
  return { ok: missing.length + duplicated.length + unexpected.length === 0, records: lines.length, missing, duplicated, unexpected, files, duplicatedIn };
}
