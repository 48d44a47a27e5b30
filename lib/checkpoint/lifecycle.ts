/**
 * The lifecycles inside checkpoint coordination: of a checkpoint, of a region in one checkpoint,
 * and of a subtask in one checkpoint. The pending checkpoint keeps the last two as codes in typed
 * arrays (a state's code is its position in the table) and moves them only as these tables say.
 * The first state of each of those tables has code 0: what a fresh typed array holds.
 */
import { lifecycle } from '../util/lifecycle';

/** Checkpoint N as a whole; `completed` and `failed` are its outcome in the history and the catalog. */
export const CHECKPOINT_LIFECYCLE = lifecycle('checkpoint', {
  /** Triggered, not finalized. */
  pending: ['completed', 'failed'],
  /** Finalized with a manifest (some regions may have fallen back to an earlier checkpoint). */
  completed: [],
  /** Failed as a whole (timeout, too many failed regions, a failure limit, the job ended). */
  failed: [],
});
export type CheckpointPhase = (typeof CHECKPOINT_LIFECYCLE.states)[number];

/** One region in checkpoint N. */
export const REGION_IN_CHECKPOINT = lifecycle('region in a checkpoint', {
  undecided: ['completed', 'failed'],
  /** Every subtask acknowledged or finished; still fails if one of them fails before N is finalized. */
  completed: ['failed'],
  failed: [],
});

/** One subtask in checkpoint N. */
export const SUBTASK_IN_CHECKPOINT = lifecycle('subtask in a checkpoint', {
  /** Not asked: its region failed at the trigger. */
  idle: [],
  waiting: ['acked', 'finished'],
  acked: [],
  /** Finished (before the trigger or during N): not waited for. */
  finished: [],
});
