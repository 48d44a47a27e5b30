/**
 * A restarted producer collects its determinants (determinant-requester.ts): a consumer unit
 * answers for all its consumer subtasks in one object, and a single consumer's answer object is
 * still read; the producer waits until every consumer has answered.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../lib/memory';
import { collectDeterminants, determinantAnswerKey, type DeterminantAnswer } from '../../lib/runtime/determinant-requester';
import type { Step } from '../../lib/runtime/determinants';

const JOB = 'j';
const w = (t: number): Step => ['w', t];

describe('determinant answers', () => {
  it("reads a unit's object for its consumers and a consumer's own object, as they appear, until every consumer has answered", async () => {
    const blobs = new MemoryBlobStore();
    let asked = 0;
    const answer = (consumer: string, steps: Step[]): DeterminantAnswer => ({ consumer, first: 3, steps });
    const collected = await collectDeterminants({
      jobId: JOB,
      producer: 'src#0',
      attempt: 2,
      from: 3,
      consumers: ['join#0', 'join#1', 'join#2'],
      blobs,
      pollMs: 5,
      timeoutMs: 10_000,
      send: async () => {
        asked++;
        // One unit hosts join#0 and join#1 (one object, with an answer for a subtask not asked as well); join#2 answers later, alone.
        await blobs.put(determinantAnswerKey(JOB, 'src#0', 2, 'unit-1'), JSON.stringify({ answers: [answer('join#0', [w(10)]), answer('join#1', [w(10), w(20)]), answer('other#9', [w(1), w(2), w(3)])] }));
        setTimeout(() => void blobs.put(determinantAnswerKey(JOB, 'src#0', 2, 'join#2'), JSON.stringify(answer('join#2', [w(10)]))), 30);
      },
    });
    expect(asked).toBe(1);
    expect(collected.answered.sort()).toEqual(['join#0', 'join#1', 'join#2']);
    expect(collected.silent).toEqual([]);
    // The longest run the answers cover, from step 3.
    expect(collected.steps).toEqual([w(10), w(20)]);
  });

  it('gives up on silent consumers after the timeout and names them', async () => {
    const blobs = new MemoryBlobStore();
    const collected = await collectDeterminants({
      jobId: JOB,
      producer: 'src#0',
      attempt: 1,
      from: 0,
      consumers: ['join#0', 'join#1'],
      blobs,
      pollMs: 5,
      resendMs: 20,
      timeoutMs: 100,
      send: async () => void (await blobs.put(determinantAnswerKey(JOB, 'src#0', 1, 'unit-0'), JSON.stringify({ answers: [{ consumer: 'join#0', first: 0, steps: [] }] }))),
    });
    expect(collected.answered).toEqual(['join#0']);
    expect(collected.silent).toEqual(['join#1']);
  });
});
