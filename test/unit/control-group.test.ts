/**
 * Control message groups (lib/runtime/messages.ts controlGroup): a message a dead unit's last poll
 * took hides its whole FIFO group from the restarted attempt, so only what must stay in order
 * shares one: a checkpoint's trigger, completion and abort.
 */
import { describe, expect, it } from 'vitest';
import { MemoryChannelTransport } from '../../lib/memory';
import { controlGroup, type ControlMessage } from '../../lib/runtime/messages';

const replay: ControlMessage = { type: 'replay', requests: [{ edgeId: 'e0', consumer: 1, consumerAttempt: 2, request: 1, from: { 0: [[0, 0]] } }] };

describe('controlGroup', () => {
  it('keeps a checkpoint\'s messages in one group, and sends each replay, determinant and availability message alone', () => {
    const trigger = controlGroup({ type: 'triggerCheckpoint', checkpointId: 7, subtasks: ['a#0'] }, 'x');
    expect(controlGroup({ type: 'checkpointComplete', checkpointId: 7, subtasks: ['a#0'] }, 'y')).toBe(trigger);
    expect(controlGroup({ type: 'checkpointAborted', checkpointId: 7, subtasks: ['a#0'] }, 'z')).toBe(trigger);
    expect(controlGroup({ type: 'triggerCheckpoint', checkpointId: 8, subtasks: ['a#0'] }, 'x')).not.toBe(trigger);
    expect(controlGroup(replay, 'a')).not.toBe(controlGroup(replay, 'b'));
    expect(controlGroup({ type: 'availability', edgeId: 'e0', consumer: 1, available: true, attempt: 2 }, 'a')).not.toBe(controlGroup(replay, 'a'));
    expect(controlGroup({ type: 'cancel' }, 'a')).toBe(controlGroup({ type: 'cancel', attempt: 1 }, 'b'));
  });

  it('a message hidden by a dead receiver holds back its own group only', async () => {
    // The FIFO contract of the memory transport (as SQS's): a group with a message in flight gives nothing more.
    const q = new MemoryChannelTransport();
    await q.createQueues(['ctl.fifo']);
    const send = (m: ControlMessage, id: string) => q.send('ctl.fifo', [{ groupId: controlGroup(m, id), dedupId: id, body: JSON.stringify(m) }]);
    await send(replay, 'r1');
    // The dead attempt's poll takes the first request and never deletes it.
    expect(await q.receive('ctl.fifo', { max: 10, waitSeconds: 0, visibilityTimeoutSeconds: 10 })).toHaveLength(1);
    await send({ type: 'triggerCheckpoint', checkpointId: 3, subtasks: ['a#0'] }, 't3');
    await send({ type: 'replay', requests: [{ edgeId: 'e0', consumer: 1, consumerAttempt: 2, request: 2, from: { 0: [[0, 0]] } }] }, 'r2');
    const next = await q.receive('ctl.fifo', { max: 10, waitSeconds: 0, visibilityTimeoutSeconds: 10 });
    expect(next.map((m) => (JSON.parse(m.body) as ControlMessage).type).sort()).toEqual(['replay', 'triggerCheckpoint']);
  });
});
