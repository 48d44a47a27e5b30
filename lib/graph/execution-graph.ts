/**
 * The execution graph: operators chained into tasks, tasks expanded into subtasks, edges into
 * channels and sub-partitions, and subtasks grouped into checkpoint regions.
 *
 * A sub-partition is all channels of one edge that end at one consumer subtask: the unit of
 * availability (single-point recovery). Its logical queue name (`subPartitionQueue`) is what the
 * subtasks write to and read from; a job's task units carry it over their unit's input queue
 * (`unitInputQueue`, lib/runtime/channel-mux.ts). Subtasks run on their own (tests) read it directly.
 */
import { validateJobGraph, type EdgeDef, type EdgeKind, type JobGraph, type OperatorDef } from './job-graph';

export interface TaskVertex {
  /** The id of the chain's first operator. */
  id: string;
  /** Operators chained inside this task, in order; records pass between them without a queue. */
  operators: OperatorDef[];
  parallelism: number;
  inputs: ExecutionEdge[];
  outputs: ExecutionEdge[];
}

export interface ExecutionEdge {
  /** Short id used in queue names ('e0', 'e1', ...). */
  id: string;
  kind: EdgeKind;
  /** Producer and consumer task ids. */
  from: string;
  to: string;
  /** The operator at the consumer that reads this edge, and which of its inputs it is. */
  toOperator: string;
  input: number;
  key?: EdgeDef['key'];
  /** Pointwise (forward) edges link producer i only to consumer i; the others are all-to-all. */
  pointwise: boolean;
  /** The producer's side output this edge carries (absent: its main output). */
  sideOutput?: string;
}

export interface SubtaskRef {
  /** `${taskId}#${index}` */
  id: string;
  taskId: string;
  index: number;
}

export interface Region {
  id: string;
  subtasks: string[];
}

export interface ExecutionGraph {
  jobName: string;
  tasks: TaskVertex[];
  edges: ExecutionEdge[];
  subtasks: SubtaskRef[];
  regions: Region[];
}

export const subtaskId = (taskId: string, index: number): string => `${taskId}#${index}`;

export function parseSubtaskId(id: string): SubtaskRef {
  const hash = id.lastIndexOf('#');
  return { id, taskId: id.slice(0, hash), index: Number(id.slice(hash + 1)) };
}

/**
 * Logical name of the queue of sub-partition (edge, consumer); the SQS adapter adds `.fifo`. In a
 * job's task units it names the sub-partition inside the multiplexed unit queues, not an SQS queue.
 */
export function subPartitionQueue(queuePrefix: string, jobId: string, edgeId: string, consumer: number): string {
  return `${queuePrefix}-${jobId}-${edgeId}-${consumer}`;
}

/** Edges whose queue names `subPartitionQueues` keeps (the oldest go first): a process hosts one job's units, or tests a few jobs. */
const NAMED_EDGES_KEPT = 64;
const queueNames = new Map<string, string[]>();

/**
 * `subPartitionQueue` of one edge by consumer, each name made once in this process and the same
 * string after: every producer of an all-to-all edge sends to each consumer (P x P sends per
 * checkpoint), and a name built per send was hashed again by the unit's transport each time.
 */
export function subPartitionQueues(queuePrefix: string, jobId: string, edgeId: string): (consumer: number) => string {
  const key = `${queuePrefix}-${jobId}-${edgeId}`;
  let names = queueNames.get(key);
  if (!names) {
    if (queueNames.size >= NAMED_EDGES_KEPT) queueNames.delete(queueNames.keys().next().value!);
    queueNames.set(key, (names = []));
  }
  const known = names;
  return (consumer) => (known[consumer] ??= subPartitionQueue(queuePrefix, jobId, edgeId, consumer));
}

/**
 * Logical name of task unit n's input queue: every channel into its subtasks, multiplexed (one
 * message carries the channel messages of every producer subtask of one unit: channel-mux.ts).
 */
export function unitInputQueue(queuePrefix: string, jobId: string, unitNumber: number): string {
  return `${queuePrefix}-${jobId}-u${unitNumber}`;
}

/**
 * Logical name of a task unit's control queue (checkpoint triggers, notifications, availability).
 * Units are numbered so the name stays within SQS's 80 characters.
 */
export function controlQueue(queuePrefix: string, jobId: string, unitNumber: number): string {
  return `${queuePrefix}-${jobId}-c${unitNumber}`;
}

export function buildExecutionGraph(graph: JobGraph): ExecutionGraph {
  const ordered = validateJobGraph(graph);
  const inputsOf = groupBy(graph.edges, (e) => e.to);
  const outputsOf = groupBy(graph.edges, (e) => e.from);

  // Chain A -> B when the edge is forward (and not a side output), parallelism matches, it is A's
  // only output and B's only input, and B allows chaining.
  const chainedInto = new Map<string, string>(); // operator id -> task id
  const tasks: TaskVertex[] = [];
  const taskById = new Map<string, TaskVertex>();
  for (const op of ordered) {
    const ins = inputsOf.get(op.id) ?? [];
    const single = ins.length === 1 ? ins[0]! : undefined;
    const upstream = single ? ordered.find((o) => o.id === single.from)! : undefined;
    const chain =
      single !== undefined &&
      upstream !== undefined &&
      single.kind === 'forward' &&
      single.sideOutput === undefined &&
      op.chaining &&
      (outputsOf.get(upstream.id) ?? []).length === 1 &&
      upstream.parallelism === op.parallelism;
    if (chain) {
      const taskId = chainedInto.get(upstream!.id)!;
      taskById.get(taskId)!.operators.push(op);
      chainedInto.set(op.id, taskId);
    } else {
      const task: TaskVertex = { id: op.id, operators: [op], parallelism: op.parallelism, inputs: [], outputs: [] };
      tasks.push(task);
      taskById.set(task.id, task);
      chainedInto.set(op.id, task.id);
    }
  }

  const edges: ExecutionEdge[] = [];
  for (const edge of graph.edges) {
    const from = chainedInto.get(edge.from)!;
    const to = chainedInto.get(edge.to)!;
    if (from === to) continue; // chained: no queue
    const exec: ExecutionEdge = {
      id: `e${edges.length}`,
      kind: edge.kind,
      from,
      to,
      toOperator: edge.to,
      input: edge.input,
      key: edge.key,
      pointwise: edge.kind === 'forward',
      ...(edge.sideOutput !== undefined ? { sideOutput: edge.sideOutput } : {}),
    };
    edges.push(exec);
    taskById.get(from)!.outputs.push(exec);
    taskById.get(to)!.inputs.push(exec);
  }

  const subtasks = tasks.flatMap((t) => Array.from({ length: t.parallelism }, (_, i) => ({ id: subtaskId(t.id, i), taskId: t.id, index: i })));
  return { jobName: graph.name, tasks, edges, subtasks, regions: computeRegions(tasks, edges, subtasks) };
}

/**
 * Checkpoint regions: subtasks linked by pointwise edges share a region; an all-to-all edge joins
 * every subtask it touches. Union-find over subtask ids.
 */
export function computeRegions(tasks: TaskVertex[], edges: ExecutionEdge[], subtasks: SubtaskRef[]): Region[] {
  const parent = new Map(subtasks.map((s) => [s.id, s.id]));
  const find = (x: string): string => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root)!;
    while (parent.get(x) !== root) {
      const next = parent.get(x)!;
      parent.set(x, root);
      x = next;
    }
    return root;
  };
  const union = (a: string, b: string) => parent.set(find(a), find(b));
  const parallelism = new Map(tasks.map((t) => [t.id, t.parallelism]));
  for (const edge of edges) {
    const p = parallelism.get(edge.from)!;
    const c = parallelism.get(edge.to)!;
    if (edge.pointwise) {
      for (let i = 0; i < p; i++) union(subtaskId(edge.from, i), subtaskId(edge.to, i));
    } else {
      const anchor = subtaskId(edge.from, 0);
      for (let i = 0; i < p; i++) union(anchor, subtaskId(edge.from, i));
      for (let j = 0; j < c; j++) union(anchor, subtaskId(edge.to, j));
    }
  }
  const members = new Map<string, string[]>();
  for (const s of subtasks) {
    // Appended in place: copying the list for each member made this quadratic in a region's size
    // (1.5 s per graph build for the join's one region of 12,000 subtasks at P=4000, once per unit start).
    const root = find(s.id);
    const list = members.get(root);
    if (list) list.push(s.id);
    else members.set(root, [s.id]);
  }
  // Order regions by their first subtask so ids are stable across processes.
  return [...members.values()].map((subs, i) => ({ id: `r${i}`, subtasks: subs }));
}

/** The channels into a consumer subtask on one edge: which producer indexes write to it. */
export function producersOf(edge: ExecutionEdge, consumerIndex: number, producerParallelism: number): number[] {
  return edge.pointwise ? [consumerIndex] : Array.from({ length: producerParallelism }, (_, i) => i);
}

/** The inverse of `producersOf`: which consumer indexes a producer subtask writes to on one edge. */
export function consumersOf(edge: ExecutionEdge, producerIndex: number, consumerParallelism: number): number[] {
  if (edge.pointwise) return producerIndex < consumerParallelism ? [producerIndex] : [];
  return Array.from({ length: consumerParallelism }, (_, j) => j);
}

/**
 * The producer indexes writing to any of these consumers of one edge, each once. An all-to-all
 * edge's producers are listed once, not once per consumer (at P=4000 a join unit's 100 consumers
 * per edge were 400,000 producer entries where 4,000 are distinct).
 */
export function producersOfAll(edge: ExecutionEdge, consumers: Iterable<number>, producerParallelism: number): number[] {
  if (!edge.pointwise) return producersOf(edge, 0, producerParallelism);
  return [...new Set(consumers)];
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}
