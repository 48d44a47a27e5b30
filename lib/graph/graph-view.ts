/**
 * The execution graph as plain data, for the API and its readers (the web UI, the CLI's `graph`):
 * tasks with their chained operators and parallelism, and the edges between tasks with their kind
 * and how many queues (sub-partitions, one SQS FIFO queue per consumer subtask) and channels they
 * have. Key selectors and user functions stay behind; regions and availability flags travel
 * beside it in the job's details.
 */
import type { ExecutionGraph } from './execution-graph';
import type { EdgeKind, OperatorKind } from './job-graph';

export interface TaskView {
  /** The id of the chain's first operator (as in subtask ids `<task>#<index>`). */
  id: string;
  parallelism: number;
  /** Operators chained in this task, in order; between them records pass without a queue (forward). */
  operators: { id: string; kind: OperatorKind }[];
}

export interface EdgeView {
  /** The execution edge id, as in queue names and availability flags (`e0`, `e1`, ...). */
  id: string;
  kind: EdgeKind;
  /** Producer and consumer task ids. */
  from: string;
  to: string;
  /** The consumer operator that reads this edge, and which of its inputs it is (0, or 0/1 for a connected stream). */
  toOperator: string;
  input: number;
  /** Forward edges link producer i only to consumer i; the others are all-to-all. */
  pointwise: boolean;
  /** Sub-partitions (queues): one per consumer subtask. */
  subPartitions: number;
  /** One ordered channel per (producer, consumer) pair the edge links. */
  channels: number;
}

export interface GraphView {
  tasks: TaskView[];
  edges: EdgeView[];
}

export function graphView(graph: ExecutionGraph): GraphView {
  const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
  return {
    tasks: graph.tasks.map((t) => ({ id: t.id, parallelism: t.parallelism, operators: t.operators.map((o) => ({ id: o.id, kind: o.kind })) })),
    edges: graph.edges.map((e) => {
      const consumers = parallelism.get(e.to) ?? 0;
      return {
        id: e.id,
        kind: e.kind,
        from: e.from,
        to: e.to,
        toOperator: e.toOperator,
        input: e.input,
        pointwise: e.pointwise,
        subPartitions: consumers,
        channels: e.pointwise ? consumers : (parallelism.get(e.from) ?? 0) * consumers,
      };
    }),
  };
}
