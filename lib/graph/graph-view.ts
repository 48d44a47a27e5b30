/**
 * A job's execution graph as plain data for the API and its readers (the CLI's `graph`): tasks
 * with their chained operators and parallelism, and edges with their kind and how many queues
 * (sub-partitions) and channels they have. Regions and availability flags travel beside it in
 * the job's details.
 */
import type { EdgeKind } from './job-graph';
import type { ExecutionGraph } from './execution-graph';

export interface GraphView {
  tasks: { id: string; parallelism: number; operators: { id: string; kind: string }[] }[];
  edges: {
    id: string;
    from: string;
    to: string;
    kind: EdgeKind;
    /** Pointwise (forward): producer i to consumer i only; otherwise all-to-all. */
    pointwise: boolean;
    /** One queue per consumer subtask. */
    subPartitions: number;
    /** One ordered channel per (producer, consumer) pair the edge links. */
    channels: number;
  }[];
}

export function graphView(graph: ExecutionGraph): GraphView {
  const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
  return {
    tasks: graph.tasks.map((t) => ({ id: t.id, parallelism: t.parallelism, operators: t.operators.map((o) => ({ id: o.id, kind: o.kind })) })),
    edges: graph.edges.map((e) => {
      const consumers = parallelism.get(e.to)!;
      return {
        id: e.id,
        from: e.from,
        to: e.to,
        kind: e.kind,
        pointwise: e.pointwise,
        subPartitions: consumers,
        channels: e.pointwise ? consumers : parallelism.get(e.from)! * consumers,
      };
    }),
  };
}
