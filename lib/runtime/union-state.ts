/**
 * Union list state (Flink's "union redistribution") and its parallel restore.
 *
 * Each subtask of an operator holds named lists of JSON entries. At checkpoint N every subtask
 * writes its own lists as one object:
 *
 *   checkpoints/<jobId>/<N>/union/<operatorId>/<subtaskIndex>.a<attempt>.json
 *   {"format":"sluice.union.v1","operatorId":…,"checkpointId":N,"subtask":i,"parallelism":P,
 *    "counts":{"<name>":k,…},"states":{"<name>":[…k entries…],…}}
 *
 * At restore EVERY subtask reads EVERY subtask's object (the union) and keeps what it needs, e.g.
 * a source re-splitting partitions after a rescale, or a broadcast rule set. With P subtasks that
 * is P objects per subtask, so `restoreUnionState` reads them with a bounded number of requests in
 * flight (a small promise pool) and decodes each object as soon as it arrives. The result is the
 * same whatever the concurrency: the union in subtask order.
 */
import type { Json } from '../api/json';
import { UnionListState } from '../api/union-list-state';
import type { BlobStore } from '../ports/blob-store';
import { mapWithConcurrency, type PoolStats } from '../util/concurrency';

export { UnionListState };

export const UNION_FORMAT = 'sluice.union.v1';
export const DEFAULT_UNION_RESTORE_CONCURRENCY = 32;

// ---- the state ---------------------------------------------------------------------------------

/** The union list states of one operator subtask, by name: what `ctx.unionState(name)` hands out. */
export class UnionStateBackend {
  private readonly states = new Map<string, UnionListState>();

  /** The state of this name, created empty on first use. */
  state<T extends Json = Json>(name: string): UnionListState<T> {
    if (!name) throw new Error('union state: a state needs a non-empty name');
    let state = this.states.get(name);
    if (!state) this.states.set(name, (state = new UnionListState()));
    return state as unknown as UnionListState<T>;
  }

  get names(): string[] {
    return [...this.states.keys()].sort();
  }

  /** True when no state holds an entry (a checkpoint may then skip writing the object). */
  get isEmpty(): boolean {
    for (const s of this.states.values()) if (s.size > 0) return false;
    return true;
  }

  /** name → entries, names in sorted order (deterministic bytes). */
  snapshot(): Record<string, Json[]> {
    const out: Record<string, Json[]> = {};
    for (const name of this.names) out[name] = this.states.get(name)!.snapshot();
    return out;
  }

  /** Sets every state to the restored union (states absent from it are emptied). */
  restore(union: Record<string, Json[]>): void {
    for (const state of this.states.values()) state.clear();
    for (const [name, entries] of Object.entries(union)) this.state(name).replace(entries);
  }
}

// ---- layout ------------------------------------------------------------------------------------

export interface UnionStateLocation {
  jobId: string;
  checkpointId: number;
  operatorId: string;
}

export function unionStatePrefix(loc: UnionStateLocation): string {
  return `checkpoints/${loc.jobId}/${loc.checkpointId}/union/${loc.operatorId}/`;
}

/**
 * The object of one subtask. A runtime writer names its attempt (and incarnation inside its unit),
 * like snapshots do, so a restarted attempt that takes checkpoint N again never rewrites the object
 * its predecessor wrote (and the manifest may name); restore reads the key the manifest names.
 */
export function unionStateKey(loc: UnionStateLocation, subtaskIndex: number, writer?: UnionWriter): string {
  return `${unionStatePrefix(loc)}${subtaskIndex}${writer ? writerSuffix(writer) : ''}.json`;
}

/**
 * `.a<attempt>[r<incarnation>]`: what names the writer in a snapshot or union object key, so two
 * attempts (or a subtask restarted in its unit) never overwrite each other's checkpoint N.
 */
export const writerSuffix = ({ attempt, incarnation }: UnionWriter): string => `.a${attempt}${incarnation ? `r${incarnation}` : ''}`;

/** Which attempt of a subtask writes its union object. */
export interface UnionWriter {
  attempt: number;
  incarnation?: number;
}

/** The union object of subtask `subtaskIndex` among its acknowledged handles (whatever attempt wrote it). */
export function unionHandleIn<H extends { key: string }>(handles: readonly H[], loc: UnionStateLocation, subtaskIndex: number): H | undefined {
  const prefix = `${unionStatePrefix(loc)}${subtaskIndex}`;
  return handles.find((h) => h.key.startsWith(prefix) && /^(\.a\d+(r\d+)?)?\.json$/.test(h.key.slice(prefix.length)));
}

/** The decoded object of one subtask. */
export interface UnionStatePart {
  format: typeof UNION_FORMAT;
  operatorId: string;
  checkpointId: number;
  subtask: number;
  /** Parallelism of the operator when the object was written. */
  parallelism: number;
  /** Entries per state name (checked against the lists when decoding: detects a truncated object). */
  counts: Record<string, number>;
  states: Record<string, Json[]>;
}

export class UnionStateError extends Error {
  override name = 'UnionStateError';
  constructor(
    message: string,
    /** The object concerned, when there is one. */
    readonly key?: string,
  ) {
    super(message);
  }
}

// ---- write -------------------------------------------------------------------------------------

export interface UnionSnapshotTarget extends UnionStateLocation {
  subtaskIndex: number;
  parallelism: number;
  /** The writing attempt, named in the key (see unionStateKey). */
  writer?: UnionWriter;
}

/** Same shape as a checkpoint SnapshotHandle: goes into the subtask's acknowledged handles. */
export interface UnionSnapshotHandle {
  key: string;
  bytes: number;
}

export function encodeUnionPart(target: UnionSnapshotTarget, states: Record<string, readonly Json[]>): string {
  const names = Object.keys(states).sort();
  const counts: Record<string, number> = {};
  const lists: Record<string, readonly Json[]> = {};
  for (const name of names) {
    counts[name] = states[name]!.length;
    lists[name] = states[name]!;
  }
  return JSON.stringify({
    format: UNION_FORMAT,
    operatorId: target.operatorId,
    checkpointId: target.checkpointId,
    subtask: target.subtaskIndex,
    parallelism: target.parallelism,
    counts,
    states: lists,
  });
}

/**
 * Writes this subtask's union list states for checkpoint N. Accepts a `UnionStateBackend`, or
 * name → entries. Writes an object even when every list is empty, so a restore can tell "nothing
 * held" from "missing".
 */
export async function writeUnionSnapshot(
  blobs: BlobStore,
  target: UnionSnapshotTarget,
  states: UnionStateBackend | Record<string, readonly Json[]>,
): Promise<UnionSnapshotHandle> {
  if (!Number.isInteger(target.subtaskIndex) || target.subtaskIndex < 0 || target.subtaskIndex >= target.parallelism) {
    throw new UnionStateError(`union state: subtask index ${target.subtaskIndex} is outside parallelism ${target.parallelism}`);
  }
  const body = encodeUnionPart(target, states instanceof UnionStateBackend ? states.snapshot() : states);
  const key = unionStateKey(target, target.subtaskIndex, target.writer);
  await blobs.put(key, body);
  return { key, bytes: Buffer.byteLength(body) };
}

// ---- decode ------------------------------------------------------------------------------------

const decoder = new TextDecoder('utf-8', { fatal: true });

export function decodeUnionPart(key: string, body: Uint8Array): UnionStatePart {
  let part: UnionStatePart;
  try {
    part = JSON.parse(decoder.decode(body)) as UnionStatePart;
  } catch (err) {
    throw new UnionStateError(`union state object ${key} is not valid JSON: ${(err as Error).message}`, key);
  }
  if (typeof part !== 'object' || part === null || part.format !== UNION_FORMAT) {
    throw new UnionStateError(`union state object ${key} is not in format ${UNION_FORMAT}`, key);
  }
  if (!Number.isInteger(part.subtask) || !Number.isInteger(part.parallelism) || typeof part.states !== 'object' || typeof part.counts !== 'object') {
    throw new UnionStateError(`union state object ${key} has a malformed header`, key);
  }
  for (const [name, count] of Object.entries(part.counts)) {
    const entries = part.states[name];
    if (!Array.isArray(entries) || entries.length !== count) {
      throw new UnionStateError(`union state object ${key}: state '${name}' should hold ${count} entries, holds ${Array.isArray(entries) ? entries.length : 'none'}`, key);
    }
  }
  for (const name of Object.keys(part.states)) {
    if (!(name in part.counts)) throw new UnionStateError(`union state object ${key}: state '${name}' has no count in the header`, key);
  }
  return part;
}

// ---- restore -----------------------------------------------------------------------------------

export interface UnionRestoreSource extends UnionStateLocation {
  /** Parallelism of the operator at checkpoint N: subtasks 0..P-1 each wrote one object. */
  parallelism: number;
}

export interface UnionRestoreOptions {
  /** Most reads in flight at once (default 32). */
  concurrency?: number;
  /** 'sequential' reads one object at a time (concurrency 1), for comparison. Default 'parallel'. */
  mode?: 'parallel' | 'sequential';
}

export interface UnionRestoreStats {
  objects: number;
  bytes: number;
  /** Wall time of the whole restore (reads and decoding). */
  ms: number;
  /** The bound used. */
  concurrency: number;
  /** Most reads that were in flight at once. */
  maxInFlight: number;
}

export interface UnionRestoreResult {
  /** name → the entries of every subtask, subtask 0's first, each in its own order. */
  states: Record<string, Json[]>;
  /** One per object, in subtask order: which subtask wrote what. */
  parts: { key: string; subtask: number; bytes: number; counts: Record<string, number> }[];
  stats: UnionRestoreStats;
}

/**
 * Reads every subtask's union object and returns the union in subtask order.
 *
 * `from` is either where checkpoint N's objects are (`{ jobId, checkpointId, operatorId,
 * parallelism }`), or the object keys themselves: under regional checkpoints the subtasks of one
 * operator may restore from different checkpoint ids (one per region, as the manifest says), so
 * the caller passes the key each subtask acknowledged for its region's restore point.
 *
 * Checks: every object exists (the error names the missing key), decodes, and the objects come
 * from subtasks 0..P-1 exactly once, all written at the same parallelism P.
 */
export async function restoreUnionState(
  blobs: BlobStore,
  from: UnionRestoreSource | readonly string[],
  options: UnionRestoreOptions = {},
): Promise<UnionRestoreResult> {
  const started = performance.now();
  const concurrency = options.mode === 'sequential' ? 1 : (options.concurrency ?? DEFAULT_UNION_RESTORE_CONCURRENCY);
  const byLocation = !isKeyList(from);
  const keys = byLocation ? Array.from({ length: from.parallelism }, (_, i) => unionStateKey(from, i)) : [...from];
  if (byLocation && (!Number.isInteger(from.parallelism) || from.parallelism < 1)) {
    throw new UnionStateError(`union state: parallelism must be a positive integer, got ${from.parallelism}`);
  }
  const pool: PoolStats = { maxInFlight: 0 };
  let bytes = 0;
  const parts = await mapWithConcurrency(
    keys,
    concurrency,
    async (key, i) => {
      const body = await blobs.get(key);
      if (!body) {
        const what = byLocation ? ` (operator '${from.operatorId}', subtask ${i}, checkpoint ${from.checkpointId})` : '';
        throw new UnionStateError(`union state object ${blobs.location}/${key} is missing${what}`, key);
      }
      bytes += body.length;
      const part = decodeUnionPart(key, body); // decoded as it arrives, while other reads are in flight
      if (byLocation) {
        if (part.subtask !== i || part.operatorId !== from.operatorId || part.checkpointId !== from.checkpointId) {
          throw new UnionStateError(
            `union state object ${key} belongs to operator '${part.operatorId}', subtask ${part.subtask}, checkpoint ${part.checkpointId}`,
            key,
          );
        }
      }
      return { key, bytes: body.length, part };
    },
    pool,
  );

  // Subtask order; every subtask of the writing parallelism exactly once.
  parts.sort((a, b) => a.part.subtask - b.part.subtask);
  const parallelism = byLocation ? from.parallelism : parts[0]?.part.parallelism;
  for (const [i, p] of parts.entries()) {
    if (p.part.parallelism !== parallelism) {
      throw new UnionStateError(`union state object ${p.key} was written at parallelism ${p.part.parallelism}, expected ${parallelism}`, p.key);
    }
    if (p.part.subtask !== i) {
      const dup = parts.find((q, j) => j !== i && q.part.subtask === p.part.subtask);
      throw new UnionStateError(
        dup ? `union state: objects ${dup.key} and ${p.key} both hold subtask ${p.part.subtask}` : `union state: no object holds subtask ${i} of ${parallelism}`,
        dup ? p.key : undefined,
      );
    }
  }
  if (parts.length !== (parallelism ?? 0)) {
    throw new UnionStateError(`union state: ${parts.length} objects for parallelism ${parallelism}`);
  }

  const states = mergeUnionParts(parts.map((p) => p.part));
  return {
    states,
    parts: parts.map((p) => ({ key: p.key, subtask: p.part.subtask, bytes: p.bytes, counts: p.part.counts })),
    stats: { objects: parts.length, bytes, ms: performance.now() - started, concurrency, maxInFlight: pool.maxInFlight },
  };
}

function isKeyList(from: UnionRestoreSource | readonly string[]): from is readonly string[] {
  return Array.isArray(from);
}

/** The union of the parts' lists, name by name, in the parts' (subtask) order. */
export function mergeUnionParts(parts: readonly { states: Record<string, Json[]> }[]): Record<string, Json[]> {
  const states: Record<string, Json[]> = {};
  for (const part of parts) {
    for (const name of Object.keys(part.states).sort()) {
      const into = (states[name] ??= []);
      for (const entry of part.states[name]!) into.push(entry);
    }
  }
  return states;
}
