import { describe, expect, it } from 'vitest';
import { JobBuilder } from '../../lib/api/job';
import { JobRegistry, resolveParams } from '../../lib/api/registry';
import { buildExecutionGraph, consumersOf, producersOf, producersOfAll, type ExecutionEdge } from '../../lib/graph/execution-graph';
import { JobSpecError, validateJobGraph, type JobGraph, type OperatorDef } from '../../lib/graph/job-graph';
import { GeneratorSource } from '../../lib/connectors/generator-source';
import { demoJob } from '../../examples/jobs/demo';

const gen = () => new GeneratorSource<number>({ partitions: 1, recordsPerPartition: 1, generate: (_p, o) => o });
const nullSink = () => ({ open: async () => {}, write: () => {}, prepare: async () => null, commit: async () => {}, abort: async () => {} });
const op = (id: string, kind: OperatorDef['kind'], parallelism = 2): OperatorDef => ({
  id,
  kind,
  parallelism,
  chaining: true,
  ...(kind === 'source' ? { source: gen } : kind === 'sink' ? { sink: nullSink } : kind === 'process' ? { process: () => ({ processElement: () => {} }) } : { fn: (x: unknown) => x }),
});

describe('job spec validation names the problem', () => {
  const base = (): JobGraph => ({
    name: 'bad',
    operators: [op('src', 'source'), op('m', 'map'), op('out', 'sink')],
    edges: [
      { from: 'src', to: 'm', kind: 'forward', input: 0 },
      { from: 'm', to: 'out', kind: 'forward', input: 0 },
    ],
  });

  it('accepts a valid graph in topological order', () => {
    expect(validateJobGraph(base()).map((o) => o.id)).toEqual(['src', 'm', 'out']);
  });
  it('refuses a cycle', () => {
    const g = base();
    g.operators.push(op('loop', 'map'));
    g.edges.push({ from: 'm', to: 'loop', kind: 'forward', input: 0 }, { from: 'loop', to: 'm', kind: 'forward', input: 1 });
    expect(() => validateJobGraph(g)).toThrow(/has a cycle through operators m, .*loop/);
  });
  it('refuses an edge to an unknown operator', () => {
    const g = base();
    g.edges.push({ from: 'm', to: 'nowhere', kind: 'forward', input: 0 });
    expect(() => validateJobGraph(g)).toThrow(/ends at unknown operator 'nowhere'/);
  });
  it('refuses parallelism below 1', () => {
    const g = base();
    g.operators[1] = op('m', 'map', 0);
    expect(() => validateJobGraph(g)).toThrow(/operator 'm' has parallelism 0/);
  });
  it('refuses a keyed operator without keyBy, and keyBy without a key', () => {
    const g = base();
    g.operators.push(op('agg', 'process'));
    g.edges.push({ from: 'm', to: 'agg', kind: 'rebalance', input: 0 }, { from: 'agg', to: 'out', kind: 'forward', input: 1 });
    expect(() => validateJobGraph(g)).toThrow(/keyed operator 'agg' gets a rebalance input from 'm'; call keyBy\(\)/);
    g.edges[2] = { from: 'm', to: 'agg', kind: 'hash', input: 0 };
    expect(() => validateJobGraph(g)).toThrow(/keyBy \(hash\) edge without a key selector/);
  });
  it('refuses a forward edge between different parallelism, duplicate ids and dangling operators', () => {
    const g = base();
    g.operators[2] = op('out', 'sink', 3);
    expect(() => validateJobGraph(g)).toThrow(/forward edge between parallelism 2 and 3/);
    const d = base();
    d.operators.push(op('m', 'map'));
    expect(() => validateJobGraph(d)).toThrow(/operator id 'm' is used twice/);
    const e = base();
    e.operators.push(op('lonely', 'map'));
    expect(() => validateJobGraph(e)).toThrow(/operator 'lonely' has no input/);
  });
  it('refuses unknown jobs and bad parameters by name', () => {
    const registry = new JobRegistry([demoJob]);
    expect(() => registry.get('nope')).toThrow(/unknown job 'nope'; registered jobs: demo/);
    expect(() => resolveParams(demoJob, { parallelism: 0 })).toThrow(/parameter 'parallelism' of job 'demo' must be at least 1/);
    expect(() => resolveParams(demoJob, { records: 'many' })).toThrow(/parameter 'records' of job 'demo' must be a number/);
    expect(() => resolveParams(demoJob, { colour: 1 })).toThrow(/has no parameter 'colour'/);
    expect(() => resolveParams(demoJob, { users: 1.5 })).toThrow(JobSpecError);
  });
});

describe('execution graph', () => {
  it('chains forward edges of equal parallelism and splits at keyBy', () => {
    const graph = buildExecutionGraph(demoJob.build(resolveParams(demoJob, { parallelism: 3 })));
    expect(graph.tasks.map((t) => [t.id, t.operators.map((o) => o.id)])).toEqual([
      ['generator', ['generator', 'parse']],
      ['hourly-aggregate', ['hourly-aggregate', 's3-sink']],
    ]);
    expect(graph.edges).toHaveLength(1);
    expect(graph.edges[0]).toMatchObject({ id: 'e0', kind: 'hash', from: 'generator', to: 'hourly-aggregate', pointwise: false });
    expect(graph.subtasks).toHaveLength(6);
    // The keyBy edge is all-to-all: one region for the whole job.
    expect(graph.regions).toHaveLength(1);
    expect(producersOf(graph.edges[0]!, 1, 3)).toEqual([0, 1, 2]);
  });

  it('turning chaining off makes the forward edge cross a queue; pointwise pipelines are separate regions', () => {
    const job = new JobBuilder('ingest', { parallelism: 3 });
    job
      .source('src', gen)
      .map('parse', (x: number) => x * 2)
      .sink('out', nullSink, { chaining: false });
    const graph = buildExecutionGraph(job.build());
    expect(graph.tasks.map((t) => t.id)).toEqual(['src', 'out']);
    expect(graph.edges[0]).toMatchObject({ kind: 'forward', pointwise: true });
    expect(graph.regions.map((r) => r.subtasks)).toEqual([
      ['src#0', 'out#0'],
      ['src#1', 'out#1'],
      ['src#2', 'out#2'],
    ]);
    expect(producersOf(graph.edges[0]!, 2, 3)).toEqual([2]);
  });

  it('consumersOf inverts producersOf, and producersOfAll lists each producer of a set of consumers once', () => {
    const edges: ExecutionEdge[] = [
      { id: 'e0', kind: 'hash', from: 'a', to: 'b', pointwise: false } as ExecutionEdge,
      { id: 'e1', kind: 'forward', from: 'a', to: 'b', pointwise: true } as ExecutionEdge,
    ];
    for (const edge of edges) {
      for (const [producers, consumers] of [[3, 3], [4, 2], [1, 5]] as const) {
        for (let p = 0; p < producers; p++) {
          const expected = Array.from({ length: consumers }, (_, j) => j).filter((j) => producersOf(edge, j, producers).includes(p));
          expect(consumersOf(edge, p, consumers)).toEqual(expected);
        }
        const some = [0, consumers - 1, 0];
        const expected = [...new Set(some.flatMap((c) => producersOf(edge, c, producers)))];
        expect(producersOfAll(edge, some, producers).sort()).toEqual(expected.sort());
      }
    }
  });

  it('a connected keyed join reads two hash edges as inputs 0 and 1', () => {
    const job = new JobBuilder('join', { parallelism: 2 });
    const a = job.source('features', gen).keyBy((x) => String(x));
    const b = job.source('events', gen, { parallelism: 3 }).keyBy((x) => String(x));
    a.connect(b)
      .process('join', () => ({ processElement: () => {} }), { parallelism: 4 })
      .sink('out', nullSink, { parallelism: 4 });
    const graph = buildExecutionGraph(job.build());
    const join = graph.tasks.find((t) => t.id === 'join')!;
    expect(join.operators.map((o) => o.id)).toEqual(['join', 'out']);
    expect(join.inputs.map((e) => [e.from, e.input])).toEqual([
      ['features', 0],
      ['events', 1],
    ]);
    expect(graph.regions).toHaveLength(1);
    expect(graph.subtasks).toHaveLength(2 + 3 + 4);
  });
});
