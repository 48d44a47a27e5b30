/**
 * Typed lifecycles: each table allows its moves and no other, a move from a known state that the
 * table does not allow does not compile (the @ts-expect-error lines: `npm run typecheck` fails if
 * one of them compiles), and the stores refuse an illegal move instead of writing it.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointPlanner, CheckpointTopology, PendingCheckpoint } from '../../lib/checkpoint';
import { CHECKPOINT_LIFECYCLE, REGION_IN_CHECKPOINT, SUBTASK_IN_CHECKPOINT } from '../../lib/checkpoint/lifecycle';
import { R_COMPLETED, R_FAILED } from '../../lib/checkpoint/plan';
import { JOB_LIFECYCLE, JobStore, UNIT_LIFECYCLE, type JobRecord, type UnitStatus } from '../../lib/jobs/job-store';
import { unitSk, unitsPk } from '../../lib/ports/metadata-keys';
import { MemoryMetadataStore } from '../../lib/memory';
import { IllegalTransition, lifecycle } from '../../lib/util/lifecycle';
import { regions, snap } from './checkpoint/helpers';

/** Every (from, to) pair of a lifecycle with whether it is allowed. */
function pairs<S extends string>(states: readonly S[], can: (from: S, to: S) => boolean): string[] {
  return states.flatMap((from) => states.filter((to) => can(from, to)).map((to) => `${from}->${to}`));
}

describe('lifecycle', () => {
  const light = lifecycle('light', { red: ['green'], green: ['amber'], amber: ['red'], broken: [] });

  it('allows the moves of its table and no other', () => {
    expect(pairs(light.states, (a, b) => light.can(a, b))).toEqual(['red->green', 'green->amber', 'amber->red']);
    expect(light.check('red', 'green')).toBe('green');
    expect(() => light.check('red', 'amber')).toThrow(new IllegalTransition('light', 'red', 'amber'));
    expect(() => light.check('red', 'amber')).toThrow('light: no move from red to amber');
    expect(light.move('amber', 'red')).toBe('red');
    // @ts-expect-error red cannot move to amber
    expect(() => light.move('red', 'amber')).toThrow(IllegalTransition);
  });

  it('numbers its states in the order declared, and checks codes too', () => {
    expect(light.states.map((s) => light.code(s))).toEqual([0, 1, 2, 3]);
    expect(light.canCode(light.code('red'), light.code('green'))).toBe(true);
    expect(light.canCode(light.code('green'), light.code('red'))).toBe(false);
    expect(() => light.checkCode(1, 0)).toThrow('light: no move from green to red');
  });

  it('names the sources of a state and its final states', () => {
    expect(light.sources('red')).toEqual(['amber']);
    expect(light.states.filter((s) => light.isFinal(s))).toEqual(['broken']);
  });

  it('does not accept a target that is not a state', () => {
    // @ts-expect-error 'blue' is not a state of the table
    expect(() => lifecycle('odd', { red: ['blue'] })).toThrow("odd: unknown state 'blue'");
  });
});

describe('job lifecycle', () => {
  it('runs until it ends, and an end is final', () => {
    expect(pairs(JOB_LIFECYCLE.states, (a, b) => JOB_LIFECYCLE.can(a, b))).toEqual(['RUNNING->FINISHED', 'RUNNING->FAILED', 'RUNNING->CANCELLED']);
    expect(JOB_LIFECYCLE.states.filter((s) => JOB_LIFECYCLE.isFinal(s))).toEqual(['FINISHED', 'FAILED', 'CANCELLED']);
  });

  it('the store ends a running job once; a second end is refused and the first stays', async () => {
    const jobs = new JobStore(new MemoryMetadataStore());
    const job = { jobId: 'j', name: 'n', params: {}, settings: {}, status: 'RUNNING', createdAt: 0, queuePrefix: 'q', shape: { units: 1, subtasks: 1, regions: 1, queues: 1, unitShards: 1 }, units: [], regions: [], queues: [] } as unknown as JobRecord;
    await jobs.createJob(job);
    expect(await jobs.setJobStatus('j', 'FAILED', 'boom')).toBe(true);
    expect(await jobs.setJobStatus('j', 'CANCELLED')).toBe(false);
    expect(await jobs.getJob('j')).toMatchObject({ status: 'FAILED', error: 'boom' });
    expect((await jobs.listJobs())[0]!.status).toBe('FAILED');
    // @ts-expect-error a job is never set back to RUNNING
    await jobs.setJobStatus('j', 'RUNNING').catch(() => undefined);
  });
});

describe('task unit lifecycle', () => {
  it('starts, runs, hands over and ends; an end is final', () => {
    expect(pairs(UNIT_LIFECYCLE.states, (a, b) => UNIT_LIFECYCLE.can(a, b))).toEqual([
      'STARTING->RUNNING',
      'STARTING->FINISHED',
      'STARTING->FAILED',
      'STARTING->CANCELLED',
      'RUNNING->STARTING',
      'RUNNING->FINISHED',
      'RUNNING->FAILED',
      'RUNNING->CANCELLED',
    ]);
    // @ts-expect-error a finished unit does not run again (a new attempt starts instead)
    expect(() => UNIT_LIFECYCLE.move('FINISHED', 'RUNNING')).toThrow(IllegalTransition);
  });

  /** A unit record of attempt 0, put in state `from` directly (not through a move). */
  const store = async (from?: UnitStatus) => {
    const jobs = new JobStore(new MemoryMetadataStore());
    await jobs.startUnitAttempt('j', 'u', ['t#0'], 0);
    if (from) await jobs.metadata.update(unitsPk('j', 0), unitSk('u'), { set: { status: from } });
    const status = async () => (await jobs.getUnit('j', 'u'))!.status;
    return { jobs, status };
  };

  it('the store follows a whole legal life: start, run, hand over, resume, finish, restate', async () => {
    const { jobs, status } = await store();
    expect(await status()).toBe('STARTING');
    expect(await jobs.startInvocation('j', 'u', 0, 'first')).toBe(true);
    expect(await status()).toBe('RUNNING');
    expect(await jobs.recordHandover('j', 'u', 0, 'first', 1, 'k', {})).toBe(true);
    expect(await status()).toBe('STARTING');
    expect(await jobs.claimHandover('j', 'u', 0, 'second')).toBeDefined();
    expect(await jobs.reportUnit('j', 'u', 0, { status: 'RUNNING' }, 'second')).toBe(true);
    expect(await jobs.reportUnit('j', 'u', 0, { heartbeatAt: 5 }, 'second')).toBe(true);
    expect(await jobs.reportUnit('j', 'u', 0, { status: 'FINISHED' }, 'second')).toBe(true);
    // The supervisor may record it finished too (it saw the process gone): a restatement, no move.
    expect(await jobs.reportUnit('j', 'u', 0, { status: 'FINISHED' })).toBe(true);
    expect(await status()).toBe('FINISHED');
  });

  it.each([
    ['FINISHED', 'RUNNING'],
    ['FINISHED', 'STARTING'],
    ['FINISHED', 'FAILED'],
    ['FAILED', 'FINISHED'],
    ['FAILED', 'RUNNING'],
    ['CANCELLED', 'RUNNING'],
    ['CANCELLED', 'FINISHED'],
  ] as const)('the store refuses a report moving %s to %s, and writes nothing', async (from, to) => {
    const { jobs, status } = await store(from);
    expect(await jobs.reportUnit('j', 'u', 0, { status: to, heartbeatAt: 9 })).toBe(false);
    expect(await jobs.getUnit('j', 'u')).toMatchObject({ status: from });
    expect((await jobs.getUnit('j', 'u'))!.heartbeatAt).not.toBe(9);
    expect(await status()).toBe(from);
  });

  it('the store refuses every report of a cancelled unit, heartbeats included', async () => {
    const { jobs } = await store('CANCELLED');
    expect(await jobs.reportUnit('j', 'u', 0, { heartbeatAt: 9 })).toBe(false);
  });

  it('an invocation starts only a STARTING attempt: not one the job stopped before it started', async () => {
    const { jobs, status } = await store();
    expect(await jobs.markStopped('j', 'u', 0, 'stopped: the job was cancelled')).toBe(true);
    expect(await jobs.startInvocation('j', 'u', 0, 'late')).toBe(false);
    expect(await status()).toBe('CANCELLED');
  });

  it('the job stops only a live unit: a finished, failed or already stopped one keeps its record', async () => {
    for (const from of ['FINISHED', 'FAILED', 'CANCELLED'] as const) {
      const { jobs, status } = await store(from);
      expect(await jobs.markStopped('j', 'u', 0, 'stopped')).toBe(false);
      expect(await status()).toBe(from);
    }
  });

  it('a hand-over is a move of a running unit only', async () => {
    const { jobs, status } = await store('FAILED');
    await jobs.metadata.update(unitsPk('j', 0), unitSk('u'), { set: { owner: 'first' } });
    expect(await jobs.recordHandover('j', 'u', 0, 'first', 1, 'k', {})).toBe(false);
    expect(await status()).toBe('FAILED');
  });

  it('a new attempt starts STARTING whatever the last one ended as', async () => {
    const { jobs, status } = await store('FAILED');
    expect(await jobs.startUnitAttempt('j', 'u', ['t#0'], 1)).toBe(true);
    expect(await status()).toBe('STARTING');
  });
});

describe('checkpoint lifecycles', () => {
  it('a checkpoint is finalized once, completed or failed', () => {
    expect(pairs(CHECKPOINT_LIFECYCLE.states, (a, b) => CHECKPOINT_LIFECYCLE.can(a, b))).toEqual(['pending->completed', 'pending->failed']);
    expect(pairs(REGION_IN_CHECKPOINT.states, (a, b) => REGION_IN_CHECKPOINT.can(a, b))).toEqual(['undecided->completed', 'undecided->failed', 'completed->failed']);
    expect(pairs(SUBTASK_IN_CHECKPOINT.states, (a, b) => SUBTASK_IN_CHECKPOINT.can(a, b))).toEqual(['waiting->acked', 'waiting->finished']);
  });

  function pending(sizes: number[]) {
    const { regions: rs, sources } = regions(sizes);
    const t = new CheckpointTopology(rs);
    return { t, p: new PendingCheckpoint(7, 100, 50, new CheckpointPlanner(t, sources, []).plan(), t) };
  }

  it('a pending checkpoint fails or completes once; a second finalization throws', () => {
    const failed = pending([1]).p;
    expect(failed.phase).toBe('pending');
    failed.abort({ reason: 'timeout', message: 'late' }, 200);
    expect(failed.phase).toBe('failed');
    expect(failed.aborted).toBe(true);
    expect(() => failed.abort({ reason: 'timeout', message: 'again' }, 300)).toThrow('checkpoint: no move from failed to failed');
    expect(() => failed.finalize(300)).toThrow('checkpoint: no move from failed to completed');
    expect(failed.failure?.message).toBe('late');
    expect(failed.endTime).toBe(200);

    const { t, p } = pending([1]);
    p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7));
    p.finalize(250);
    expect(p.phase).toBe('completed');
    expect(p.endTime).toBe(250);
    expect(() => p.abort({ reason: 'job-ended', message: 'x' }, 300)).toThrow('checkpoint: no move from completed to failed');
  });

  it('a completed region may still fail before N is finalized; a failed one does not fail twice', () => {
    const { t, p } = pending([1, 1]);
    expect(p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7))).toBe('region-completed');
    expect(p.regionState(0)).toBe(R_COMPLETED);
    expect(p.failRegion(0, { reason: 'task-failed', message: 'restarted' })).toEqual(['s/7/t0#0']);
    expect(p.regionState(0)).toBe(R_FAILED);
    expect(p.failRegion(0, { reason: 'task-failed', message: 'again' })).toBeUndefined();
  });

  it('a subtask acknowledges or finishes once, only while it is waited for', () => {
    const { t, p } = pending([2]);
    const a = t.indexOf('t0#0');
    const b = t.indexOf('t0#1');
    expect(p.acknowledge(a, snap('t0#0', 7))).toBe('accepted');
    expect(p.acknowledge(a, snap('t0#0', 7))).toBe('duplicate');
    expect(p.finish(a)).toBe(false);
    expect(p.finish(b)).toBe(true);
    expect(p.acknowledge(b, snap('t0#1', 7))).toBe('rejected');
  });
});
