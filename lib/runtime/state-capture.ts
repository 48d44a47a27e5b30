/**
 * What a subtask's state is, captured in one place for both of its uses:
 *
 * - a checkpoint snapshot restores a NEW attempt: record positions only (the attempt numbers its
 *   messages afresh), union state written as its own object (restore redistributes it);
 * - a hand-over continues the SAME attempt: message sequence numbers and channel order too, the
 *   union state inline.
 *
 * Both carry the operators' state (watermark, source offsets, keyed state) and the sink's staged
 * transactions. A snapshot leaves out what the subtask does not have (no sink, no outputs, no
 * inputs); a hand-over always lists them.
 */
import type { Json, SourceFunction } from '../api/functions';
import type { SubtaskSnapshot } from './checkpoint-io';
import type { DeterminantLog } from './determinants';
import type { ReadBases } from './source-reread';
import type { SubtaskHandover } from './handover';
import type { InputDriver } from './input-driver';
import type { OperatorChain } from './operator-chain';
import type { SinkLedger } from './sink-ledger';
import type { SubtaskOutput } from './subtask-output';
import type { UnionStateBackend } from './union-state';

/** The parts of a subtask that hold state. */
export interface StatefulParts {
  subtask: string;
  chain: OperatorChain;
  source: SourceFunction<Json> | undefined;
  union: UnionStateBackend;
  ledger: SinkLedger | undefined;
  output: SubtaskOutput;
  /** Absent for a source, and for a consumer whose input has not started. */
  input: InputDriver | undefined;
  /** An inner task's determinants (single-exact). */
  determinants: DeterminantLog | undefined;
  /** A source's read bases (it can regenerate what its in-flight log no longer holds). */
  bases?: ReadBases | undefined;
}

export type SnapshotForm = { checkpointId: number };
export type HandoverForm = Pick<SubtaskHandover, 'status' | 'lastCheckpoint' | 'finalStaged' | 'triggers' | 'counters'>;

export function captureState(parts: StatefulParts, form: SnapshotForm): SubtaskSnapshot;
export function captureState(parts: StatefulParts, form: HandoverForm): SubtaskHandover;
export function captureState(p: StatefulParts, form: SnapshotForm | HandoverForm): SubtaskSnapshot | SubtaskHandover {
  // A union entry only when some union state name exists (even empty): a subtask that never asked
  // for union state keeps none.
  const union = p.union.names.length > 0;
  const operators = {
    watermark: p.chain.currentWatermark,
    ...(p.chain.recordsProcessingTime ? { processingTime: p.chain.processingTime } : {}),
    ...(p.source ? { source: p.source.snapshotOffsets('checkpointId' in form ? form.checkpointId : undefined) } : {}),
    // A checkpoint's snapshot is serialized before the subtask's next record (writeSnapshot); a hand-over's is kept.
    ...(p.chain.keyedState ? { keyed: p.chain.keyedState.snapshot({ copy: !('checkpointId' in form) }) } : {}),
  };
  if ('checkpointId' in form) {
    return {
      checkpointId: form.checkpointId,
      subtask: p.subtask,
      ...operators,
      ...(p.ledger ? { sinkPending: p.ledger.staged() } : {}),
      ...(union ? { union: true } : {}),
      ...(p.output.writers.length > 0 ? { writers: p.output.positions() } : {}),
      ...(p.input?.gate ? { channels: p.input.positions() } : {}),
      ...(p.determinants ? { determinants: p.determinants.length } : {}),
      ...(p.bases ? { readBases: p.bases.state() } : {}),
    };
  }
  return {
    subtask: p.subtask,
    status: form.status,
    lastCheckpoint: form.lastCheckpoint,
    ...operators,
    ...(union ? { union: p.union.snapshot() } : {}),
    sinkPending: p.ledger?.staged() ?? [],
    ...(form.finalStaged !== undefined ? { finalStaged: form.finalStaged } : {}),
    triggers: [...form.triggers],
    writers: p.output.handoverState(),
    channels: p.input?.gate?.handoverState() ?? [],
    counters: form.counters,
    ...(p.determinants ? { determinants: p.determinants.state() } : {}),
    ...(p.input?.gate ? { determinantStore: p.input.gate.determinants.state() } : {}),
    ...(p.bases ? { readBases: p.bases.state() } : {}),
  };
}
