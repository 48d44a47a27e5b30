/** Determinants for single-exact recovery (lib/runtime/determinants.ts): the log, the store, the merge. */
import { describe, expect, it } from 'vitest';
import { DeterminantLog, DeterminantStore, mergeAnswers, type Step } from '../../lib/runtime/determinants';

describe('determinant log (producer side)', () => {
  it('records consecutive records of one channel as one step, and event-time advances between', () => {
    const log = new DeterminantLog();
    log.records('e0/0', 0, 0, 5);
    log.records('e0/0', 0, 5, 3);
    log.records('e0/1', 0, 0, 2);
    log.watermark(100);
    log.records('e0/0', 0, 8, 1);
    expect(log.takeFor('e1/0')).toEqual([0, [['d', 'e0/0', 0, 0, 8], ['d', 'e0/1', 0, 0, 2], ['w', 100], ['d', 'e0/0', 0, 8, 1]]]);
    expect(log.length).toBe(4);
  });

  it('gives each channel what it has not carried, sending the still-growing last step again', () => {
    const log = new DeterminantLog();
    log.records('e0/0', 0, 0, 5);
    expect(log.takeFor('a')).toEqual([0, [['d', 'e0/0', 0, 0, 5]]]);
    log.records('e0/0', 0, 5, 5);
    log.watermark(7);
    expect(log.takeFor('a')).toEqual([0, [['d', 'e0/0', 0, 0, 10], ['w', 7]]]);
    expect(log.takeFor('b')).toEqual([0, [['d', 'e0/0', 0, 0, 10], ['w', 7]]]);
    log.records('e0/1', 0, 0, 1);
    expect(log.takeFor('a')).toEqual([1, [['w', 7], ['d', 'e0/1', 0, 0, 1]]]);
  });

  it('carries no more than its room; the rest goes with the next message', () => {
    const log = new DeterminantLog();
    for (let i = 0; i < 10; i++) log.watermark(i);
    const first = log.takeFor('a', 60)!;
    expect(first[0]).toBe(0);
    expect(first[1].length).toBeGreaterThan(0);
    expect(first[1].length).toBeLessThan(10);
    const second = log.takeFor('a')!;
    expect(second[0]).toBe(first[1].length);
    expect([...first[1], ...second[1]]).toEqual(Array.from({ length: 10 }, (_, i) => ['w', i]));
  });

  it('counts steps before a barrier and trims them when its checkpoint completes; a restore goes on from the count', () => {
    const log = new DeterminantLog();
    log.records('c', 0, 0, 4);
    log.watermark(1);
    expect(log.barrier(3)).toBe(2);
    log.watermark(2);
    log.trim(3);
    expect(log.takeFor('a')).toEqual([2, [['w', 2]]]);
    log.restart(2);
    expect(log.length).toBe(2);
    log.watermark(9);
    expect(log.takeFor('a')).toEqual([2, [['w', 9]]]);
  });
  it('never grows a step across a barrier: records after it are a step of their own', () => {
    const log = new DeterminantLog();
    log.records('c', 0, 0, 3);
    expect(log.barrier(1)).toBe(1);
    log.records('c', 0, 3, 2);
    log.records('c', 0, 5, 1);
    expect(log.takeFor('a')).toEqual([0, [['d', 'c', 0, 0, 3], ['d', 'c', 0, 3, 3]]]);
    // A restore from checkpoint 1 follows the steps from its count: records 3.. are all there.
    log.trim(1);
    expect(log.takeFor('b')).toEqual([1, [['d', 'c', 0, 3, 3]]]);
    // So after a hand-over.
    const resumed = new DeterminantLog();
    resumed.records('c', 0, 0, 3);
    resumed.barrier(2);
    const next = new DeterminantLog();
    next.resume(resumed.state());
    next.records('c', 0, 3, 1);
    expect(next.takeFor('a')).toEqual([0, [['d', 'c', 0, 0, 3], ['d', 'c', 0, 3, 1]]]);
  });
});

describe('determinant store (consumer side)', () => {
  it('keeps a contiguous run per producer; a step sent again grown replaces the shorter one', () => {
    const store = new DeterminantStore();
    store.add('j#1', 0, [['d', 'e0/0', 0, 0, 5]]);
    store.add('j#1', 0, [['d', 'e0/0', 0, 0, 10], ['w', 7]]);
    store.add('j#1', 1, [['w', 7], ['d', 'e0/1', 0, 0, 1]]);
    expect(store.from('j#1', 0)).toEqual({ first: 0, steps: [['d', 'e0/0', 0, 0, 10], ['w', 7], ['d', 'e0/1', 0, 0, 1]] });
    expect(store.from('j#1', 2)).toEqual({ first: 2, steps: [['d', 'e0/1', 0, 0, 1]] });
    expect(store.from('other#0', 0)).toEqual({ first: 0, steps: [] });
  });

  it('trims what precedes a completed checkpoint\'s barrier, and survives a hand-over', () => {
    const store = new DeterminantStore();
    store.add('j#1', 0, [['w', 1], ['w', 2], ['w', 3]]);
    store.barrier('j#1', 5, 2);
    store.trim(5);
    expect(store.from('j#1', 0)).toEqual({ first: 2, steps: [['w', 3]] });
    const next = new DeterminantStore();
    next.resume(store.state());
    expect(next.from('j#1', 0)).toEqual(store.from('j#1', 0));
  });
});

describe('merging answers', () => {
  it('takes the longest contiguous run, and the longest version of a step still growing', () => {
    const a = { first: 3, steps: [['w', 1], ['d', 'c', 0, 0, 5]] as Step[] };
    const b = { first: 3, steps: [['w', 1], ['d', 'c', 0, 0, 9], ['w', 2]] as Step[] };
    const c = { first: 6, steps: [['d', 'x', 0, 0, 1]] as Step[] };
    expect(mergeAnswers(3, [a, b, c])).toEqual([['w', 1], ['d', 'c', 0, 0, 9], ['w', 2], ['d', 'x', 0, 0, 1]]);
    expect(mergeAnswers(3, [a])).toEqual(a.steps);
    expect(mergeAnswers(3, [c])).toEqual([]);
    expect(mergeAnswers(3, [])).toEqual([]);
  });
});
