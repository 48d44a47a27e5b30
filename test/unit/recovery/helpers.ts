/** Shared helpers of the recovery tests. */
import type { BlobStore } from '../../../lib/ports/blob-store';
import type { Json } from '../../../lib/api/functions';
import { JobBuilder } from '../../../lib/api/job';
import { buildExecutionGraph, type ExecutionGraph } from '../../../lib/graph/execution-graph';
import type { UnitPlacement } from '../../../lib/jobs/job-store';
import type { SourceFunction, SinkFunction, KeyedProcessFunction } from '../../../lib/api/functions';

/** Every line-delimited JSON record the job committed under output/<jobId>/. */
export async function readOutput<T>(blobs: BlobStore, jobId: string): Promise<T[]> {
  const out: T[] = [];
  for (const f of await blobs.list(`output/${jobId}/`)) {
    const text = Buffer.from((await blobs.get(f.key))!).toString('utf8').trim();
    if (text) for (const line of text.split('\n')) out.push(JSON.parse(line) as T);
  }
  return out;
}

const noSource = (): SourceFunction<Json> => ({
  open: async () => undefined,
  poll: async () => ({ records: [], done: true }),
  snapshotOffsets: () => null,
  restoreOffsets: () => undefined,
});
const noSink = (): SinkFunction<Json> => ({
  open: async () => undefined,
  write: () => undefined,
  prepare: async () => null,
  commit: async () => undefined,
  abort: async () => undefined,
});
const noProcess = (): KeyedProcessFunction<Json, Json> => ({ processElement: () => undefined });
const key = (r: Json) => String(r);

/** demo shape: source -> map (chained) -> keyBy -> keyed aggregate -> sink (chained). */
export function demoGraph(p: number): ExecutionGraph {
  const job = new JobBuilder('demo-shape', { parallelism: p });
  job.source('src', noSource).map('parse', (r) => r).keyBy(key).process('agg', noProcess).sink('out', noSink);
  return buildExecutionGraph(job.build());
}

/** ingest shape: source -> map -> sink, forward only, with the map in its own task (chaining off). */
export function ingestGraph(p: number): ExecutionGraph {
  const job = new JobBuilder('ingest-shape', { parallelism: p });
  job.source('src', noSource).map('parse', (r) => r, { chaining: false }).sink('out', noSink);
  return buildExecutionGraph(job.build());
}

/** join shape: two sources, each keyBy into one keyed join (input 0 and 1), sink chained. */
export function joinGraph(p: number, sourceParallelism = p): ExecutionGraph {
  const job = new JobBuilder('join-shape', { parallelism: p });
  const a = job.source('a', noSource, { parallelism: sourceParallelism }).keyBy(key);
  const b = job.source('b', noSource, { parallelism: sourceParallelism }).keyBy(key);
  a.connect(b).process('join', noProcess).sink('out', noSink);
  return buildExecutionGraph(job.build());
}

/** One unit per subtask, as JobService.submit places them. */
export function onePerUnit(graph: ExecutionGraph): UnitPlacement[] {
  return graph.subtasks.map((s, n) => ({ unitId: `${s.taskId}-${s.index}`, subtasks: [s.id], controlQueue: `q-c${n}` }));
}

/** Units of `size` subtasks each, packed in graph order (subtasks of several tasks may share one). */
export function packed(graph: ExecutionGraph, size: number): UnitPlacement[] {
  const out: UnitPlacement[] = [];
  graph.subtasks.forEach((s, i) => {
    if (i % size === 0) out.push({ unitId: `u${out.length}`, subtasks: [], controlQueue: `q-c${out.length}` });
    out[out.length - 1]!.subtasks.push(s.id);
  });
  return out;
}
