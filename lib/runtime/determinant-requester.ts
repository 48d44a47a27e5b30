/**
 * How a restarted producer subtask (single-exact) gets its determinants back (determinants.ts):
 * it asks the units hosting its consumers (a `determinants` control message: the producer, its new
 * attempt, the step count of the checkpoint it restored), each consumer subtask fences the
 * producer's older attempts on its channels and answers with the steps it holds, in S3, one
 * object per consumer unit for all its consumer subtasks
 * (`determinants/<job>/<producer>/a<attempt>/<unit>.json`, `{ answers: [...] }`: an answer has no
 * size limit there). The producer waits for every consumer's answer (asking again after
 * `resendMs`), or `timeoutMs` for the ones that stay silent (a consumer that is itself restarting
 * answers from its new attempt, holding nothing), and follows the longest run of steps the answers
 * cover. Why per unit: an inner task read by P consumer subtasks packed in U units got P objects,
 * each a PUT in a consumer unit's control loop (ahead of any replay request queued behind it);
 * now U. (Sources collect none: their records follow from their offsets.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore } from '../ports/blob-store';
import type { Logger } from '../ports/telemetry';
import { mergeAnswers, type Step } from './determinants';
import type { DeterminantRequest } from './messages';

export type DeterminantSender = (request: DeterminantRequest) => Promise<void>;

export const determinantAnswerPrefix = (jobId: string, producer: string, attempt: number): string => `determinants/${jobId}/${producer}/a${attempt}/`;
/** Where `answerer` (a consumer unit, or one consumer subtask) puts its answers to one producer attempt. */
export const determinantAnswerKey = (jobId: string, producer: string, attempt: number, answerer: string): string =>
  `${determinantAnswerPrefix(jobId, producer, attempt)}${answerer}.json`;

/** An answer object: one consumer's answer, or a unit's answers for its consumers. */
export type DeterminantAnswerObject = DeterminantAnswer | { answers: DeterminantAnswer[] };

/** One consumer subtask's answer. */
export interface DeterminantAnswer {
  consumer: string;
  first: number;
  steps: Step[];
}

export interface CollectOptions {
  jobId: string;
  producer: string;
  attempt: number;
  from: number;
  /** Every consumer subtask of the producer's output edges. */
  consumers: readonly string[];
  send: DeterminantSender;
  blobs: BlobStore;
  pollMs?: number;
  resendMs?: number;
  timeoutMs?: number;
  logger?: Logger;
}

export interface CollectedDeterminants {
  steps: Step[];
  answered: string[];
  silent: string[];
}

export async function collectDeterminants(options: CollectOptions): Promise<CollectedDeterminants> {
  const { jobId, producer, attempt, from, blobs } = options;
  const request: DeterminantRequest = { producer, attempt, from };
  const prefix = determinantAnswerPrefix(jobId, producer, attempt);
  const wanted = new Set(options.consumers);
  const byConsumer = new Map<string, DeterminantAnswer>();
  const read = new Set<string>();
  const started = Date.now();
  let sentAt = started;
  // The listing backs off (to 10x the first wait): every restarted producer of a unit polls its
  // own prefix, 66 of them at once in a P=300 join unit, and answers come within a second or two.
  let pollMs = options.pollMs ?? 200;
  await options.send(request);
  for (;;) {
    // Each object is read once, as it appears (a unit's object holds all of its consumers' answers).
    for (const { key } of await blobs.list(prefix)) {
      if (read.has(key)) continue;
      read.add(key);
      const body = await blobs.get(key);
      if (!body) continue;
      const object = JSON.parse(Buffer.from(body).toString('utf8')) as DeterminantAnswerObject;
      for (const answer of 'answers' in object ? object.answers : [object]) if (wanted.has(answer.consumer)) byConsumer.set(answer.consumer, answer);
    }
    if (byConsumer.size === wanted.size || Date.now() - started >= (options.timeoutMs ?? 15_000)) break;
    if (Date.now() - sentAt >= (options.resendMs ?? 5_000)) {
      sentAt = Date.now();
      await options.send(request);
    }
    await sleep(pollMs);
    pollMs = Math.min(pollMs * 1.5, (options.pollMs ?? 200) * 10);
  }
  const answers = [...byConsumer.values()];
  const steps = mergeAnswers(from, answers);
  const answered = answers.map((a) => a.consumer);
  const silent = options.consumers.filter((c) => !answered.includes(c));
  options.logger?.info(
    `determinants from ${from}: ${steps.length} step(s) from ${answered.length} consumer(s)` + (silent.length > 0 ? `; no answer from ${silent.join(', ')}` : ''),
    { from, steps: steps.length, silent },
  );
  return { steps, answered, silent };
}
