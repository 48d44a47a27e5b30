/** The sink transaction ledger on its own, over a sink that logs what it is asked to do. */
import { describe, expect, it } from 'vitest';
import type { Json, SinkFunction } from '../../lib/api/functions';
import { END_OF_TIME } from '../../lib/runtime/operator-chain';
import { SinkLedger, finalCommitKey, type FinalCommitRecord } from '../../lib/runtime/sink-ledger';
import { MemoryBlobStore } from '../../lib/memory';

function loggingSink() {
  const log: string[] = [];
  const sink: SinkFunction<Json> = {
    open: async () => undefined,
    write: () => undefined,
    prepare: async (txn, { watermark }) => {
      log.push(`prepare ${txn} @${watermark === END_OF_TIME ? 'end' : watermark}`);
      return `staged:${txn}`;
    },
    commit: async (staged) => void log.push(`commit ${String(staged)}`),
    abort: async (staged) => void log.push(`abort ${String(staged)}`),
    close: async () => void log.push('close'),
  };
  return { sink, log };
}

describe('sink transaction ledger', () => {
  it('commits the transactions staged up to the newest completed checkpoint, at the next commitCompleted, oldest first', async () => {
    const { sink, log } = loggingSink();
    const ledger = new SinkLedger(sink);
    await ledger.stage(1, 'c1', 10);
    await ledger.stage(2, 'c2', 20);
    await ledger.stage(3, 'c3', 30);
    ledger.complete(1);
    ledger.complete(2);
    expect(log).toEqual(['prepare c1 @10', 'prepare c2 @20', 'prepare c3 @30']);
    await ledger.commitCompleted();
    expect(log.slice(3)).toEqual(['commit staged:c1', 'commit staged:c2']);
    expect(ledger.staged()).toEqual([{ checkpointId: 3, staged: 'staged:c3' }]);
    await ledger.commitCompleted(); // nothing completed since
    expect(log).toHaveLength(5);
  });

  it('commits nothing when the completed checkpoint is older than everything staged', async () => {
    const { sink, log } = loggingSink();
    const ledger = new SinkLedger(sink);
    await ledger.stage(5, 'h5', 1);
    ledger.complete(4);
    await ledger.commitCompleted();
    expect(log).toEqual(['prepare h5 @1']);
    expect(ledger.staged()).toEqual([{ checkpointId: 5, staged: 'staged:h5' }]);
  });

  it('hands out a copy of what is staged (it goes into snapshots and hand-overs)', async () => {
    const { sink } = loggingSink();
    const ledger = new SinkLedger(sink);
    await ledger.stage(1, 'c1', 0);
    const staged = ledger.staged();
    await ledger.stage(2, 'c2', 0);
    expect(staged).toEqual([{ checkpointId: 1, staged: 'staged:c1' }]);
  });

  it('at end of input stages a final transaction and commits it after everything still pending, then closes the sink', async () => {
    const { sink, log } = loggingSink();
    const ledger = new SinkLedger(sink);
    await ledger.stage(1, 'c1', 0);
    await ledger.stage(2, 'c2', 0);
    const last = await ledger.prepareFinal();
    const blobs = new MemoryBlobStore();
    await ledger.commitFinal(last, { blobs, key: finalCommitKey('j', 's#0'), attempt: 2 });
    expect(log.slice(2)).toEqual(['prepare final @end', 'commit staged:c1', 'commit staged:c2', 'commit staged:final', 'close']);
    expect(ledger.staged()).toEqual([]);
    // What it committed was recorded first, for an attempt that restarts after it.
    const record = JSON.parse(Buffer.from((await blobs.get('sinks/j/final/s#0.json'))!).toString('utf8')) as FinalCommitRecord;
    expect(record).toEqual({ attempt: 2, staged: [{ checkpointId: 1, staged: 'staged:c1' }, { checkpointId: 2, staged: 'staged:c2' }], last: 'staged:final' });
  });

  it('records the final commit before committing anything: a sink that dies in the middle leaves the whole list to commit again', async () => {
    const { sink, log } = loggingSink();
    const ledger = new SinkLedger({ ...sink, commit: async (staged) => (staged === 'staged:c2' ? new Promise<void>(() => undefined) : sink.commit(staged)) });
    await ledger.stage(1, 'c1', 0);
    await ledger.stage(2, 'c2', 0);
    const blobs = new MemoryBlobStore();
    void ledger.commitFinal(await ledger.prepareFinal(), { blobs, key: finalCommitKey('j', 's#0'), attempt: 0 });
    for (let i = 0; i < 100 && !log.includes('commit staged:c1'); i++) await new Promise((r) => setTimeout(r, 5));
    expect(log.slice(2)).toEqual(['prepare final @end', 'commit staged:c1']); // dead in c2's commit
    const record = JSON.parse(Buffer.from((await blobs.get(finalCommitKey('j', 's#0')))!).toString('utf8')) as FinalCommitRecord;

    // The next attempt commits the record again, all of it, and closes.
    const next = loggingSink();
    await new SinkLedger(next.sink).commitRecorded(record);
    expect(next.log).toEqual(['commit staged:c1', 'commit staged:c2', 'commit staged:final', 'close']);
  });

  it('commits what a restored checkpoint had staged, and keeps waiting for what a hand-over passed on', async () => {
    const { sink, log } = loggingSink();
    const restored = new SinkLedger(sink);
    await restored.commitRestored([
      { checkpointId: 2, staged: 'a' },
      { checkpointId: 3, staged: 'b' },
    ]);
    expect(log).toEqual(['commit a', 'commit b']);
    expect(restored.staged()).toEqual([]);

    const resumed = new SinkLedger(sink);
    resumed.resume([
      { checkpointId: 4, staged: 'c' },
      { checkpointId: 5, staged: 'd' },
    ]);
    resumed.complete(4);
    await resumed.commitCompleted();
    expect(log.slice(2)).toEqual(['commit c']);
    expect(resumed.staged()).toEqual([{ checkpointId: 5, staged: 'd' }]);
  });
});
