/**
 * Notices a job that makes no progress. Once every source has reached end of input, a bounded job
 * must drain: records move, subtasks end, units finish. If nothing of that changes for the stall
 * timeout, the job is stuck (a channel whose end of input never comes, an alignment that never
 * completes) and the supervisor fails it with what each unfinished subtask waits for, instead of
 * leaving it RUNNING for good. While sources still read, a quiet job is just a quiet stream.
 */
import { createHash } from 'node:crypto';
import { parseSubtaskId } from '../graph/execution-graph';
import type { JobView } from './job-service';
import type { ProgressMark } from './job-store';

export type { ProgressMark };

export const DEFAULT_STALL_TIMEOUT_MS = 180_000;

/** The progress signature of a view (a digest: it is stored, and must not grow with the job). */
export function progressSignature(view: JobView): string {
  const hash = createHash('sha256');
  for (const u of [...view.units].sort((a, b) => a.unitId.localeCompare(b.unitId))) {
    const stats = Object.entries(u.stats ?? {}).map(([id, s]) => `${id}:${s.status}:${s.recordsIn}:${s.recordsOut}`);
    hash.update(`${u.unitId}#${u.attempt}:${u.status}:${u.generation ?? 0}[${stats.join(',')}]|`);
  }
  return hash.digest('base64url');
}

/** True once every source subtask has reported end of input. */
export function inputEnded(view: JobView, sourceTasks: ReadonlySet<string>): boolean {
  let sources = 0;
  for (const u of view.units) {
    for (const id of u.subtasks) {
      if (!sourceTasks.has(parseSubtaskId(id).taskId)) continue;
      sources++;
      const status = u.stats?.[id]?.status;
      if (status !== 'ended' && status !== 'finished') return false;
    }
  }
  return sources > 0;
}

/**
 * The next mark, and the reason the job is stuck if it is: no change for `timeoutMs` after the
 * input ended. `previous` is the mark of the last look (undefined at first).
 */
export function checkProgress(
  view: JobView,
  sourceTasks: ReadonlySet<string>,
  previous: ProgressMark | undefined,
  now: number,
  timeoutMs = DEFAULT_STALL_TIMEOUT_MS,
): { mark: ProgressMark; stalled?: string } {
  const signature = progressSignature(view);
  if (!previous || previous.signature !== signature) return { mark: { signature, since: now } };
  const mark = previous;
  if (!inputEnded(view, sourceTasks) || now - mark.since < timeoutMs) return { mark };
  const waiting: string[] = [];
  for (const u of view.units) {
    if (u.status === 'FINISHED') continue;
    for (const [id, s] of Object.entries(u.stats ?? {})) {
      if (s.status === 'finished') continue;
      const detail = s as unknown as { openChannels?: number; openDetail?: string[]; aligning?: { checkpointId: number; waitingFor: string[] }; replaysAwaited?: number };
      const what =
        detail.aligning !== undefined
          ? `aligning checkpoint ${detail.aligning.checkpointId}, waiting for ${detail.aligning.waitingFor.slice(0, 5).join(', ')}`
          : s.ending !== undefined
            ? `input ended, ${s.ending}`
          : s.status === 'ended'
            ? 'waiting for its region to commit'
            : `${detail.openChannels ?? '?'} input channel(s) not ended` +
              (detail.openDetail?.length ? ` (${detail.openDetail.join('; ')})` : '') +
              (detail.replaysAwaited ? `, ${detail.replaysAwaited} waiting for their replay` : '');
      waiting.push(`${id} (unit ${u.unitId} attempt ${u.attempt}, ${u.status}): ${what}`);
    }
  }
  return {
    mark,
    stalled:
      `no progress for ${Math.round((now - mark.since) / 1000)} s after every source reached end of input` +
      (waiting.length > 0 ? `; still running: ${waiting.slice(0, 10).join('; ')}` : ''),
  };
}
