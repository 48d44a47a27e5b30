/**
 * The job API as the page calls it: relative to the page (`../jobs` from `/ui/`), so the same
 * files work behind `npm run dev` and under an API Gateway stage (`/prod/ui/` → `/prod/jobs`).
 * The response types are the API's own (type-only imports: nothing of the server is bundled).
 */
import type { CheckpointHistoryItem } from '../../functions/api/checkpoint-service';
import type { JobDefinitionView, JobDetails, JobSummary } from '../../functions/api/job-api';
import type { ScheduleView } from '../../functions/api/schedule-service';
import type { SubmitBody } from '../../functions/api/schemas';
import type { JobRecord } from '../../lib/jobs/job-store';

export type { CheckpointHistoryItem, JobDefinitionView, JobDetails, JobSummary, ScheduleView, SubmitBody };
export type UnitView = JobDetails['units'][number];
export type FailureView = JobDetails['failures'][number];

/** An answer other than 2xx: the API's `{ error, field }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const base = new URL('../', document.baseURI);

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: body !== undefined ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new ApiError(0, `the API at ${base.href} cannot be reached (${err instanceof Error ? err.message : String(err)})`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = parsed as { error?: string; message?: string; field?: string } | undefined;
    throw new ApiError(res.status, e?.error ?? e?.message ?? `${method} ${path}: HTTP ${res.status}`, e?.field);
  }
  return parsed as T;
}

export const api = {
  list: () => call<{ jobs: JobSummary[]; definitions?: JobDefinitionView[] }>('GET', 'jobs'),
  job: (id: string) => call<JobDetails>('GET', `jobs/${encodeURIComponent(id)}`),
  checkpoints: (id: string) => call<{ jobId: string; checkpoints: CheckpointHistoryItem[] }>('GET', `jobs/${encodeURIComponent(id)}/checkpoints`),
  submit: (body: SubmitBody) => call<{ job: Pick<JobRecord, 'jobId' | 'name' | 'status'> }>('POST', 'jobs', body),
  checkpointNow: (id: string) => call<{ jobId: string; checkpointId: number }>('POST', `jobs/${encodeURIComponent(id)}/checkpoints`),
  reschedule: (id: string, schedule: unknown) => call<ScheduleView>('PUT', `jobs/${encodeURIComponent(id)}/schedule`, { schedule }),
  cancel: (id: string) => call<{ job: { jobId: string; status: string } }>('DELETE', `jobs/${encodeURIComponent(id)}`),
};

/**
 * A schedule from what a user typed: empty or `off` is none (null), `rate(...)` as is, `cron(...)`
 * in the given time zone (UTC when empty).
 */
export function scheduleInput(expression: string, timeZone: string): unknown {
  const text = expression.trim();
  if (text === '' || text.toLowerCase() === 'off') return null;
  const tz = timeZone.trim();
  if (/^cron\(/i.test(text) && tz) return { kind: 'cron', expression: text, timeZone: tz };
  return text;
}
