/**
 * The logical job graph: operators and the edges between them, as the user declared them.
 * `validateJobGraph` refuses a wrong graph with an error that names the problem.
 */
import type { KeyedProcessFunction, SinkFunction, SourceFunction } from '../api/functions';

export type EdgeKind = 'forward' | 'hash' | 'rebalance' | 'broadcast';
export type OperatorKind = 'source' | 'map' | 'filter' | 'flatMap' | 'process' | 'sink';

/* eslint-disable @typescript-eslint/no-explicit-any -- user functions are typed at the builder */
export interface OperatorDef {
  id: string;
  kind: OperatorKind;
  parallelism: number;
  /** False when the user turned chaining off: the operator starts a new task. */
  chaining: boolean;
  source?: () => SourceFunction<any>;
  fn?: (record: any) => any;
  process?: () => KeyedProcessFunction<any, any, any>;
  sink?: () => SinkFunction<any>;
}

export interface EdgeDef {
  from: string;
  to: string;
  kind: EdgeKind;
  /** Key selector of a hash edge (keyBy). */
  key?: (record: any) => string;
  /** Input number at the consumer (0, or 0/1 for a connected stream). */
  input: number;
  /** The edge carries the producer's side output with this tag (`getSideOutput`), not its main output. */
  sideOutput?: string;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface JobGraph {
  name: string;
  operators: OperatorDef[];
  edges: EdgeDef[];
}

export class JobSpecError extends Error {
  override name = 'JobSpecError';
}

export const MAX_PARALLELISM = 10_000;
const ID_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** Checks the graph and returns its operators in topological order. */
export function validateJobGraph(graph: JobGraph): OperatorDef[] {
  const where = `job '${graph.name}'`;
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(graph.name)) {
    throw new JobSpecError(`job name '${graph.name}' must be 1-24 characters of a-z, 0-9 and '-', starting with a letter`);
  }
  if (graph.operators.length === 0) throw new JobSpecError(`${where} has no operators`);
  const byId = new Map<string, OperatorDef>();
  for (const op of graph.operators) {
    if (!ID_PATTERN.test(op.id)) {
      throw new JobSpecError(`${where}: operator id '${op.id}' must be 1-32 characters of a-z, 0-9 and '-', starting with a letter`);
    }
    if (byId.has(op.id)) throw new JobSpecError(`${where}: operator id '${op.id}' is used twice`);
    if (!Number.isInteger(op.parallelism) || op.parallelism < 1 || op.parallelism > MAX_PARALLELISM) {
      throw new JobSpecError(`${where}: operator '${op.id}' has parallelism ${op.parallelism}; it must be a whole number from 1 to ${MAX_PARALLELISM}`);
    }
    const needs = { source: op.source, map: op.fn, filter: op.fn, flatMap: op.fn, process: op.process, sink: op.sink }[op.kind];
    if (typeof needs !== 'function') throw new JobSpecError(`${where}: ${op.kind} operator '${op.id}' has no function`);
    byId.set(op.id, op);
  }

  const inputs = new Map<string, EdgeDef[]>();
  const outputs = new Map<string, EdgeDef[]>();
  for (const edge of graph.edges) {
    const label = `edge ${edge.from} -> ${edge.to}`;
    const from = byId.get(edge.from);
    const to = byId.get(edge.to);
    if (!from) throw new JobSpecError(`${where}: ${label} starts at unknown operator '${edge.from}'`);
    if (!to) throw new JobSpecError(`${where}: ${label} ends at unknown operator '${edge.to}'`);
    if (from.kind === 'sink') throw new JobSpecError(`${where}: ${label} starts at sink '${from.id}'; sinks have no output`);
    if (to.kind === 'source') throw new JobSpecError(`${where}: ${label} ends at source '${to.id}'; sources have no input`);
    if (edge.sideOutput !== undefined && from.kind !== 'process') {
      throw new JobSpecError(`${where}: ${label} reads side output '${edge.sideOutput}' of ${from.kind} operator '${from.id}'; only keyed process functions and windows have side outputs`);
    }
    if (edge.kind === 'hash' && typeof edge.key !== 'function') {
      throw new JobSpecError(`${where}: ${label} is a keyBy (hash) edge without a key selector`);
    }
    if (edge.kind === 'forward' && from.parallelism !== to.parallelism) {
      throw new JobSpecError(
        `${where}: ${label} is a forward edge between parallelism ${from.parallelism} and ${to.parallelism}; use rebalance() or keyBy() to change parallelism`,
      );
    }
    inputs.set(edge.to, [...(inputs.get(edge.to) ?? []), edge]);
    outputs.set(edge.from, [...(outputs.get(edge.from) ?? []), edge]);
  }

  for (const op of graph.operators) {
    const ins = inputs.get(op.id) ?? [];
    if (op.kind !== 'source' && ins.length === 0) throw new JobSpecError(`${where}: operator '${op.id}' has no input`);
    if (op.kind !== 'sink' && (outputs.get(op.id) ?? []).length === 0) {
      throw new JobSpecError(`${where}: operator '${op.id}' has no output; end every branch with a sink`);
    }
    if (op.kind === 'process') {
      const unkeyed = ins.find((e) => e.kind !== 'hash');
      if (unkeyed) {
        throw new JobSpecError(`${where}: keyed operator '${op.id}' gets a ${unkeyed.kind} input from '${unkeyed.from}'; call keyBy() before it`);
      }
    }
  }

  return topologicalOrder(graph, inputs, outputs);
}

function topologicalOrder(graph: JobGraph, inputs: Map<string, EdgeDef[]>, outputs: Map<string, EdgeDef[]>): OperatorDef[] {
  const remaining = new Map(graph.operators.map((op) => [op.id, (inputs.get(op.id) ?? []).length]));
  const byId = new Map(graph.operators.map((op) => [op.id, op]));
  const ready = graph.operators.filter((op) => remaining.get(op.id) === 0).map((op) => op.id);
  const order: OperatorDef[] = [];
  while (ready.length > 0) {
    const id = ready.shift()!;
    order.push(byId.get(id)!);
    for (const edge of outputs.get(id) ?? []) {
      const left = remaining.get(edge.to)! - 1;
      remaining.set(edge.to, left);
      if (left === 0) ready.push(edge.to);
    }
  }
  if (order.length < graph.operators.length) {
    const inCycle = graph.operators.filter((op) => remaining.get(op.id)! > 0).map((op) => op.id);
    throw new JobSpecError(`job '${graph.name}' has a cycle through operators ${inCycle.join(', ')}`);
  }
  return order;
}
