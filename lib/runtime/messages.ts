/**
 * Wire format of one SQS message on a channel. Every message carries the producer subtask, its
 * attempt (a fencing token: a consumer ignores messages of an older attempt) and a per-channel
 * sequence number (a consumer ignores a sequence number it has already seen).
 */
import type { Json } from '../api/functions';

export type ChannelEvent =
  /** Records, and optionally the producer's watermark after them. */
  | { t: 'd'; r: Json[]; w?: number }
  /** Checkpoint barrier. */
  | { t: 'b'; c: number }
  /** Watermark only. */
  | { t: 'w'; w: number }
  /** End of input on this channel. */
  | { t: 'e' };

export type ChannelMessage = ChannelEvent & {
  /** Producer subtask index. */
  p: number;
  /** Producer attempt. */
  a: number;
  /** Sequence number on the channel, from 0 for each attempt. */
  s: number;
};

export class MalformedMessageError extends Error {
  override name = 'MalformedMessageError';
}

export function decodeChannelMessage(body: string): ChannelMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch {
    throw new MalformedMessageError(`channel message is not JSON: ${body.slice(0, 80)}`);
  }
  const m = msg as Partial<ChannelMessage>;
  if (typeof m !== 'object' || m === null || typeof m.p !== 'number' || typeof m.a !== 'number' || typeof m.s !== 'number') {
    throw new MalformedMessageError(`channel message lacks producer, attempt or sequence: ${body.slice(0, 80)}`);
  }
  if (!['d', 'b', 'w', 'e'].includes(m.t as string)) throw new MalformedMessageError(`unknown channel event '${String(m.t)}'`);
  return m as ChannelMessage;
}

/** Control messages to a task unit (its control queue). */
export type ControlMessage =
  /** Stop the unit; with `attempt`, only that attempt (a replacement ignores it). */
  | { type: 'cancel'; attempt?: number }
  | { type: 'triggerCheckpoint'; checkpointId: number; subtasks: string[] }
  | { type: 'checkpointComplete'; checkpointId: number; subtasks: string[] }
  | { type: 'checkpointAborted'; checkpointId: number; subtasks: string[] }
  /** Every subtask of these subtasks' region has ended: sinks may commit their last output. */
  | { type: 'commitFinal'; subtasks: string[] }
  | { type: 'availability'; edgeId: string; consumer: number; available: boolean; attempt: number };
