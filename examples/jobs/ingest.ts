/**
 * A pure ingest job: generator partitions -> parse -> S3 sink, all forward edges. Chaining is
 * off in front of the sink, so every pipeline is two task units joined by a queue, and each
 * pipeline is its own checkpoint region. Every input line has a unique id, so the committed
 * output can be checked exactly: each id once, none missing.
 */
import { JobBuilder } from '../../lib/api/job';
import { defineJob, typedParams, type JobParams } from '../../lib/api/registry';
import { GeneratorSource } from '../../lib/connectors/generator-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';

export const INGEST_START = Date.UTC(2026, 0, 1);

export interface IngestRecord {
  id: string;
  ts: number;
  value: number;
  [k: string]: string | number;
}

export const ingestLine = (partition: number, offset: number, msPerRecord: number): string =>
  `${partition}-${offset},${INGEST_START + offset * msPerRecord},${(partition * 31 + offset * 17) % 1000}`;

export function parseIngest(line: string): IngestRecord {
  const [id, ts, value] = line.split(',');
  return { id: id!, ts: Number(ts), value: Number(value) };
}

/** Every id the job must write, for a check of the output. */
export function expectedIngestIds(given: JobParams): Set<string> {
  const params = typedParams('ingest', ingestParams, given);
  const ids = new Set<string>();
  for (let p = 0; p < params.partitions; p++) for (let o = 0; o < params.recordsPerPartition; o++) ids.add(`${p}-${o}`);
  return ids;
}

const ingestParams = {
  parallelism: { type: 'number', default: 4, integer: true, min: 1, max: 10_000, description: 'pipelines' },
  partitions: { type: 'number', default: 8, integer: true, min: 1, max: 100_000, description: 'generator partitions' },
  recordsPerPartition: { type: 'number', default: 20_000, integer: true, min: 1, description: 'records in each partition' },
  rate: { type: 'number', default: 0, min: 0, description: 'records per second per source subtask (0: unlimited)' },
  msPerRecord: { type: 'number', default: 1000, integer: true, min: 1, description: 'event-time step between records of a partition' },
} as const;

export const ingestJob = defineJob({
  name: 'ingest',
  description: 'generator partitions -> parse -> S3 sink (forward only; one checkpoint region per pipeline)',
  params: ingestParams,
  build(params) {
    const job = new JobBuilder('ingest', { parallelism: params.parallelism });
    job
      .source('generator', () => new GeneratorSource<string>({
        partitions: params.partitions,
        recordsPerPartition: params.recordsPerPartition,
        ratePerSecond: params.rate,
        generate: (p, o) => ingestLine(p, o, params.msPerRecord),
        eventTime: (_line, _p, o) => INGEST_START + o * params.msPerRecord,
      }))
      .map('parse', parseIngest)
      .sink('s3-sink', () => new S3PartitionedSink<IngestRecord>({ prefix: 'output/{jobId}', eventTime: (r) => r.ts, successMarkers: true }), { chaining: false });
    return job.build();
  },
});
