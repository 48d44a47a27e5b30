/**
 * Wire format of one SQS message on a channel (edge, producer subtask -> consumer subtask).
 *
 * - `p` producer subtask, `a` producer attempt: the message group is `p.a`, so each attempt's
 *   messages are one FIFO-ordered group; a consumer fences attempts below its `minAttempt`.
 * - `s` message sequence within the group (from 0 per attempt; a hand-over continues it): the
 *   consumer delivers each group strictly in `s` order (SQS may land a resent batch entry after
 *   later ones) and drops an `s` already delivered (SQS delivers at least once).
 * - `l` lineage and `n` record position: the channel's RECORDS are numbered from 0 per lineage;
 *   `n` is the position of the message's first record (for a control event: of the next record).
 *   A source restored from a checkpoint continues its lineage from the checkpointed positions, so
 *   a replayed record has the same position as the first time (records, not messages, are
 *   numbered: message boundaries depend on linger timing). Any other task starts a lineage of its
 *   own (`l` = its attempt) at 0 on every start: its outputs are not regenerated identically.
 *   Records dropped for an unavailable sub-partition still take their positions. A consumer skips
 *   records below its position (duplicates) and counts a jump (missing records).
 * - A data message's records are `r` (JSON), or, when they are objects of one shape, `k` (the keys,
 *   once) and `c` (each record as the list of its values; one that is not a row of `k` as `{"v":…}`):
 *   see record-rows.ts. Decoding gives `r` either way.
 * - `ra`, `rq` mark a replay (see replay.ts): messages a producer sends again from its in-flight
 *   log to consumer attempt `ra`, for its request `rq`, in a message group of their own; the
 *   replay ends with an `x` event whose `n` is where the producer's live messages go on.
 */
import type { Json } from '../api/functions';
import type { InboundMessage } from '../ports/channels';
import type { Step } from './determinants';
import { recordsOfRows } from './record-rows';

export type ChannelEvent =
  /**
   * Records, and optionally the producer's watermark after them, and (single-exact) the producer's
   * determinants not yet sent on this channel: [index of the first, steps] (see determinants.ts).
   */
  | { t: 'd'; r: Json[]; w?: number; dt?: [number, Step[]] }
  /** Checkpoint barrier; `di`: how many of the producer's determinants precede it (single-exact). */
  | { t: 'b'; c: number; di?: number }
  /** Watermark only. */
  | { t: 'w'; w: number }
  /** End of input on this channel. */
  | { t: 'e' }
  /**
   * End of a replay: live messages continue from record position `n`, and with message `ls` of
   * the producer's live group; `e` set when its end of input was sent; `g`: records from the
   * position asked for that the producer's log no longer held (lost: the consumer counts them).
   * (`w`, the producer's watermark, is no longer sent here: a `w` event before the end carries
   * it, in the replay's order.)
   */
  | { t: 'x'; ls?: number; w?: number; e?: number; g?: number }
  /**
   * The producer restarted from checkpoint `c` (0: from scratch) and starts lineage `l`: what it
   * sent in its older lineages after barrier `c` it sends again (the consumer counts them). `f`:
   * the lineage and record position its checkpoint `c` left this channel at (what comes again
   * starts there; older lineages do not come again, newer ones than `f`'s do from their start),
   * so a consumer that never saw barrier `c` knows it too.
   */
  | { t: 'r'; c: number; f?: [lineage: number, position: number] };

export type ChannelMessage = ChannelEvent & {
  /** Producer subtask index. */
  p: number;
  /** Producer attempt. */
  a: number;
  /** Sequence number on the channel, from 0 for each attempt. */
  s: number;
  /** Lineage of the record numbering (absent: the attempt). */
  l?: number;
  /** Record position of the first record (data) or of the next record (control); absent: not numbered. */
  n?: number;
  /** A replay: the consumer attempt that asked for it. */
  ra?: number;
  /** A replay: which of that attempt's requests it answers. */
  rq?: number;
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
  if (!['d', 'b', 'w', 'e', 'x', 'r'].includes(m.t as string)) throw new MalformedMessageError(`unknown channel event '${String(m.t)}'`);
  if ((m.n !== undefined && typeof m.n !== 'number') || (m.l !== undefined && typeof m.l !== 'number')) {
    throw new MalformedMessageError(`channel message has a non-numeric lineage or record position: ${body.slice(0, 80)}`);
  }
  if (m.t === 'd') {
    const rows = m as { r?: unknown; k?: unknown; c?: unknown };
    if (rows.k !== undefined) {
      // Records as rows of one shape (record-rows.ts): built into objects here, as JSON.parse would have.
      try {
        rows.r = recordsOfRows(rows.k, rows.c);
      } catch (error) {
        throw new MalformedMessageError(`channel data message with malformed rows (${error instanceof Error ? error.message : String(error)}): ${body.slice(0, 80)}`);
      }
      delete rows.k;
      delete rows.c;
    }
    if (!Array.isArray(rows.r)) throw new MalformedMessageError(`channel data message without records: ${body.slice(0, 80)}`);
  }
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
  /**
   * Sub-partition `consumer` of `edgeId` is (un)available, for that consumer attempt. `consumers`,
   * when the notice is about several sub-partitions of the edge (a packed unit's), lists all of
   * them (`consumer` is the first): one message per producer unit and edge, not per sub-partition.
   */
  | { type: 'availability'; edgeId: string; consumer: number; available: boolean; attempt: number; consumers?: number[] }
  /**
   * Restarted consumers ask the producer subtasks hosted by this unit to send their in-flight logs
   * of their channels again, from their restored record positions (see replay.ts): the requests of
   * one consumer unit's subtasks, gathered (replay-requests.ts).
   */
  | { type: 'replay'; requests: ReplayRequest[] }
  /**
   * A restarted producer subtask (single-exact) asks the units hosting its consumers for its
   * determinants from index `from` on; each consumer stops taking the producer's older attempts
   * and answers in S3 (see determinants.ts, determinant-requester.ts).
   */
  | { type: 'determinants'; request: DeterminantRequest };

/**
 * The FIFO message group of a control message. A receive of a unit that died (SIGKILL) goes on at
 * SQS until its long poll ends and hides what it takes, and the rest of that message's group with
 * it, for the control visibility timeout, from the unit's restarted attempt (which reads the same
 * queue). With one group per queue, a replay request or a trigger sent in the first second after a
 * restart held back every control message to that unit for 10 s (chaos seed 10734: two units
 * killed together waited 10 s for each other's replays). So only what must stay in order shares a
 * group: the messages of one checkpoint. Replay and determinant requests (numbered, retried) and
 * availability notices (versioned) each go alone.
 */
export function controlGroup(message: ControlMessage, sendId: string): string {
  switch (message.type) {
    case 'triggerCheckpoint':
    case 'checkpointComplete':
    case 'checkpointAborted':
      return `checkpoint-${message.checkpointId}`;
    case 'commitFinal':
      return 'final';
    case 'replay':
    case 'determinants':
    case 'availability':
      return `${message.type}-${sendId}`;
    default:
      return 'control';
  }
}

export interface DeterminantRequest {
  /** The producer subtask (`<task>#<index>`) and its new attempt. */
  producer: string;
  attempt: number;
  /** First step index wanted: the producer's count at the checkpoint it restored. */
  from: number;
}

/** What a restarted consumer subtask asks of each producer subtask of one input edge. */
export interface ReplayRequest {
  edgeId: string;
  /** Consumer subtask index. */
  consumer: number;
  /** Its attempt, and the number of this request (from 1 per attempt; a retry asks again with the next). */
  consumerAttempt: number;
  request: number;
  /** Per producer subtask index: the restored record positions of its channel, [lineage, next]. */
  from: Record<number, [lineage: number, next: number][]>;
};

/**
 * A multiplexed message: the channel messages from the subtasks of one producer unit to the
 * subtasks of one consumer unit, in one SQS message of the consumer unit's input queue (see
 * channel-mux.ts). Text, not JSON, so the channel messages travel as they are (no second escaping,
 * no parse and re-serialization on the way):
 *
 *   M1 <producer unit>.<unit attempt>\n
 *   <edge id> <consumer subtask index> <length>\n<channel message: `length` characters>
 *   ...one such part per channel message, in the order they were sent
 *
 * Each part is a whole channel message (p, a, s, l, n, t, and its records or event), so per
 * channel nothing changes: its consumer orders, fences and deduplicates it as before.
 *
 * A run of consecutive parts that are the same control event of one producer subtask on one edge
 * (a barrier, watermark, end of input or restart notice its record writer sent on every channel:
 * they differ only in consumer, sequence and record position) may be written as one compact part
 * (`compactParts`):
 *
 *   * <edge id> <length>\n<p>,<a>,<l>,<t>,<length of rest>:<rest><j>[-<j2>]:<s>:<n>;...
 *
 * where `rest` is what follows the event's type in its body (`,"c":7`) and each item is one
 * consumer (or a range of consecutive consumers with the same sequence and position). Decoding
 * rebuilds each part's body character for character (the writer's layout, record-writer.ts
 * `enqueueRaw`; numbers are copied as text), in the same order, so a decoded envelope is the list
 * of parts that was packed. Why: every source subtask of an all-to-all edge sends each checkpoint's
 * barrier to every consumer, P x P parts of ~60 bytes (2 M parts and ~140 MB of SQS payload per
 * checkpoint of the join at P=1000, 32 M at P=4000); compact, a unit's barriers to another unit
 * are a few hundred bytes per producer subtask.
 */
export interface EnvelopePart {
  edgeId: string;
  consumer: number;
  body: string;
  /** The body decoded, when the part came out of a compact run (each such part's event is read once per run, not parsed per part). */
  decoded?: ChannelMessage;
}

/**
 * A message as a runtime transport gives it to an input gate: a multiplexed unit (channel-mux.ts)
 * gives the parts of a compact run already decoded, as `decodeChannelMessage(body)` would.
 */
export type ChannelInbound = InboundMessage & { decoded?: ChannelMessage };

const ENVELOPE_TAG = 'M1';

export function envelopeHeader(unit: number, attempt: number): string {
  return `${ENVELOPE_TAG} ${unit}.${attempt}\n`;
}

/** The text of one part (its header and body). */
export function envelopePart(part: EnvelopePart): string {
  return envelopePartHeader(part) + part.body;
}

/** A part's header line (edge, consumer subtask, the body's length in characters). */
export function envelopePartHeader(part: EnvelopePart): string {
  return `${part.edgeId} ${part.consumer} ${part.body.length}\n`;
}

export function isEnvelope(body: string): boolean {
  return body.startsWith(`${ENVELOPE_TAG} `);
}

export function decodeEnvelope(body: string): { unit: number; attempt: number; parts: EnvelopePart[] } {
  const bad = (why: string) => new MalformedMessageError(`multiplexed message ${why}: ${body.slice(0, 80)}`);
  if (!isEnvelope(body)) throw bad('lacks its M1 header');
  let at = body.indexOf('\n');
  if (at < 0) throw bad('has no header line');
  const [unit, attempt] = body.slice(ENVELOPE_TAG.length + 1, at).split('.').map(Number);
  if (!Number.isInteger(unit) || !Number.isInteger(attempt)) throw bad('names no producer unit and attempt');
  at++;
  const parts: EnvelopePart[] = [];
  while (at < body.length) {
    const eol = body.indexOf('\n', at);
    if (eol < 0) throw bad(`has a part header without its line end at ${at}`);
    const fields = body.slice(at, eol).split(' ');
    if (fields[0] === COMPACT_TAG) {
      const length = Number(fields[2]);
      if (fields.length !== 3 || !fields[1] || !Number.isInteger(length) || length < 0 || eol + 1 + length > body.length) {
        throw bad(`has a malformed compact part header '${body.slice(at, Math.min(eol, at + 60))}'`);
      }
      expandCompact(fields[1], body.slice(eol + 1, eol + 1 + length), parts, bad);
      at = eol + 1 + length;
      continue;
    }
    const consumer = Number(fields[1]);
    const length = Number(fields[2]);
    if (fields.length !== 3 || !fields[0] || !Number.isInteger(consumer) || consumer < 0 || !Number.isInteger(length) || length < 0 || eol + 1 + length > body.length) {
      throw bad(`has a malformed part header '${body.slice(at, Math.min(eol, at + 60))}'`);
    }
    parts.push({ edgeId: fields[0], consumer, body: body.slice(eol + 1, eol + 1 + length) });
    at = eol + 1 + length;
  }
  return { unit: unit!, attempt: attempt!, parts };
}

// ---- compact runs of one control event (see the envelope format above) ---------------------------

const COMPACT_TAG = '*';
/** A whole number as a compact part writes it. */
const NUMBER = /^(0|[1-9]\d*)$/;

/** What a compact run shares (`key`) and what each of its parts has of its own. */
export interface ControlShape {
  /** Edge, producer, attempt, lineage, type and the rest of the event: equal within a run. */
  key: string;
  head: string;
  rest: string;
  consumer: number;
  s: string;
  n: string;
}

/** The shape of a part that a compact run can carry, or undefined (records, replays, anything else). */
export function controlShape(part: EnvelopePart): ControlShape | undefined {
  const body = part.body;
  const c = CONTROL_SCRATCH;
  if (!readControl(body, c)) return undefined;
  const head = `${body.slice(c.pAt, c.pEnd)},${body.slice(c.aAt, c.aEnd)},${body.slice(c.lAt, c.lEnd)},${body[c.tAt]}`;
  const rest = body.slice(c.tAt + 2, body.length - 1);
  return { key: `${part.edgeId} ${head} ${rest}`, head, rest, consumer: part.consumer, s: body.slice(c.sAt, c.sEnd), n: body.slice(c.nAt, c.nEnd) };
}

/**
 * Where a control event's fields lie in its body (`readControl`), and its sequence and position as
 * numbers: read without a regular expression or substrings, since a checkpoint's writers send one
 * barrier per channel (P x P) and their unit's transport reads each.
 */
export interface ControlFields {
  pAt: number;
  pEnd: number;
  aAt: number;
  aEnd: number;
  sAt: number;
  sEnd: number;
  lAt: number;
  lEnd: number;
  nAt: number;
  nEnd: number;
  /** Index of the event type's character; the rest of the event runs from tAt + 2 to the closing brace. */
  tAt: number;
  s: number;
  n: number;
}

const CONTROL_SCRATCH: ControlFields = { pAt: 0, pEnd: 0, aAt: 0, aEnd: 0, sAt: 0, sEnd: 0, lAt: 0, lEnd: 0, nAt: 0, nEnd: 0, tAt: 0, s: 0, n: 0 };

/**
 * True when `body` is a control event as a record writer writes it (`enqueueRaw`:
 * `{"p":P,"a":A,"s":S,"l":L,"n":N,"t":"T"REST}` with whole numbers without leading zeros, S and N
 * of at most 15 digits, so exact as numbers, T one of b, w, e, r, and no line end in REST), its
 * fields' places written into `out`.
 */
export function readControl(body: string, out: ControlFields): boolean {
  // Data messages are most parts; their records make them long, and none is compacted.
  const end = body.length - 1;
  if (end > 511 || body.charCodeAt(0) !== 123 || body.charCodeAt(end) !== 125) return false;
  let at = 1;
  for (const name of CONTROL_NAMES) {
    // `"x":` then a whole number, then a comma.
    if (body.charCodeAt(at) !== 34 || body.charCodeAt(at + 1) !== name || body.charCodeAt(at + 2) !== 34 || body.charCodeAt(at + 3) !== 58) return false;
    at += 4;
    const from = at;
    if (body.charCodeAt(at) === 48) at++;
    else while (at < end && isDigit(body.charCodeAt(at))) at++;
    if (at === from || body.charCodeAt(at) !== 44) return false;
    if (name === 112) (out.pAt = from), (out.pEnd = at);
    else if (name === 97) (out.aAt = from), (out.aEnd = at);
    else if (name === 115) (out.sAt = from), (out.sEnd = at);
    else if (name === 108) (out.lAt = from), (out.lEnd = at);
    else (out.nAt = from), (out.nEnd = at);
    at++;
  }
  if (out.sEnd - out.sAt > 15 || out.nEnd - out.nAt > 15) return false;
  // "t":"<type>"
  if (body.charCodeAt(at) !== 34 || body.charCodeAt(at + 1) !== 116 || body.charCodeAt(at + 2) !== 34 || body.charCodeAt(at + 3) !== 58 || body.charCodeAt(at + 4) !== 34) return false;
  out.tAt = at + 5;
  const t = body.charCodeAt(out.tAt);
  if ((t !== 98 && t !== 119 && t !== 101 && t !== 114) || body.charCodeAt(out.tAt + 1) !== 34) return false;
  for (let i = out.tAt + 2; i < end; i++) if (body.charCodeAt(i) === 10) return false;
  out.s = digits(body, out.sAt, out.sEnd);
  out.n = digits(body, out.nAt, out.nEnd);
  return true;
}

/** The fields of a control event, in the order a writer writes them: p, a, s, l, n (character codes). */
const CONTROL_NAMES = [112, 97, 115, 108, 110] as const;

const isDigit = (code: number): boolean => code >= 48 && code <= 57;

function digits(text: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = v * 10 + (text.charCodeAt(i) - 48);
  return v;
}

/**
 * True when the control event in `body` (read into `c`) continues the run whose first part's
 * shape is `shape`: the same producer, attempt, lineage, type and rest (compared in place).
 */
export function continuesRun(body: string, c: ControlFields, shape: ControlShape): boolean {
  const { head, rest } = shape;
  const restAt = c.tAt + 2;
  if (body.length - 1 - restAt !== rest.length || !body.startsWith(rest, restAt)) return false;
  // `head` is `<p>,<a>,<l>,<t>`.
  let at = matchAt(head, 0, body, c.pAt, c.pEnd, true);
  at = matchAt(head, at, body, c.aAt, c.aEnd, true);
  at = matchAt(head, at, body, c.lAt, c.lEnd, true);
  return matchAt(head, at, body, c.tAt, c.tAt + 1, false) === head.length;
}

/** Where `text` goes on after `body[from, to)` at `at` (and a comma, when `comma`); -1 when it is not there. */
function matchAt(text: string, at: number, body: string, from: number, to: number, comma: boolean): number {
  if (at < 0 || at + (to - from) + (comma ? 1 : 0) > text.length) return -1;
  for (let i = from; i < to; i++) if (text.charCodeAt(at++) !== body.charCodeAt(i)) return -1;
  return comma ? (text.charCodeAt(at) === 44 ? at + 1 : -1) : at;
}

/** One compact part (its header and body) for a run of parts of one key, in their order. */
export function compactPart(edgeId: string, run: readonly ControlShape[]): string {
  const items: number[] = [];
  for (const x of run) items.push(x.consumer, Number(x.s), Number(x.n));
  return compactRun(edgeId, run[0]!.head, run[0]!.rest, items);
}

/**
 * The same from what a run shares (`head`, `rest` of its first part's shape) and its parts as
 * (consumer, sequence, position) triples: what a unit's transport keeps of a barrier run while it
 * waits to be sent, ~24 bytes a part instead of each part's text and shape.
 */
export function compactRun(edgeId: string, head: string, rest: string, triples: readonly number[]): string {
  const items: string[] = [];
  for (let i = 0; i < triples.length; ) {
    const [consumer, s, n] = [triples[i]!, triples[i + 1]!, triples[i + 2]!];
    let k = i + 3;
    while (k < triples.length && triples[k] === triples[k - 3]! + 1 && triples[k + 1] === s && triples[k + 2] === n) k += 3;
    items.push(`${consumer}${k - 3 > i ? `-${triples[k - 3]}` : ''}:${s}:${n}`);
    i = k;
  }
  const body = `${head},${rest.length}:${rest}${items.join(';')}`;
  return `${COMPACT_TAG} ${edgeId} ${body.length}\n${body}`;
}

function expandCompact(edgeId: string, text: string, parts: EnvelopePart[], bad: (why: string) => Error): void {
  const colon = text.indexOf(':');
  const head = colon < 0 ? [] : text.slice(0, colon).split(',');
  const [p, a, l, t, restLength] = head;
  const restEnd = colon + 1 + Number(restLength);
  if (head.length !== 5 || ![p, a, l, restLength].every((x) => NUMBER.test(x!)) || !['b', 'w', 'e', 'r'].includes(t!) || restEnd > text.length) {
    throw bad(`has a malformed compact part '${text.slice(0, 60)}'`);
  }
  const rest = text.slice(colon + 1, restEnd);
  if (rest.includes('\n')) throw bad(`has a compact part whose event spans lines`);
  const event = t === 'r' ? undefined : flatFields(rest);
  const items = text.slice(restEnd);
  for (const item of items.length > 0 ? items.split(';') : []) {
    const [range, s, n, extra] = item.split(':');
    const [from, to, more] = (range ?? '').split('-');
    if (extra !== undefined || more !== undefined || !NUMBER.test(from!) || (to !== undefined && !NUMBER.test(to)) || !NUMBER.test(s ?? '') || !NUMBER.test(n ?? '')) {
      throw bad(`has a malformed compact item '${item.slice(0, 60)}'`);
    }
    const first = Number(from);
    const last = to === undefined ? first : Number(to);
    if (last < first) throw bad(`has a compact item with an empty range '${item.slice(0, 60)}'`);
    const tail = `,"l":${l},"n":${n},"t":"${t}"${rest}}`;
    if (!event) {
      for (let j = first; j <= last; j++) parts.push({ edgeId, consumer: j, body: `{"p":${p},"a":${a},"s":${s}${tail}` });
      continue;
    }
    // Decoded as JSON.parse would (the same fields in the same order), without parsing each part.
    const [pn, an, sn, ln, nn] = [Number(p), Number(a), Number(s), Number(l), Number(n)];
    for (let j = first; j <= last; j++) {
      const decoded = { p: pn, a: an, s: sn, l: ln, n: nn, t, ...event } as ChannelMessage;
      parts.push({ edgeId, consumer: j, body: `{"p":${p},"a":${a},"s":${s}${tail}`, decoded });
    }
  }
}

/**
 * The fields of a control event's rest (`,"c":7`) when they are all numbers, strings or booleans
 * (shared by every part of a run: nothing in them can be changed through one part); undefined
 * otherwise (a restart notice's position pair, anything unexpected: each part is then parsed).
 */
function flatFields(rest: string): Record<string, number | string | boolean> | undefined {
  if (rest.length > 0 && rest.charCodeAt(0) !== 44) return undefined;
  let fields: unknown;
  try {
    fields = JSON.parse(`{${rest.slice(1)}}`);
  } catch {
    return undefined;
  }
  const flat = fields as Record<string, unknown>;
  for (const key in flat) if (key === 'p' || key === 'a' || key === 's' || key === 'l' || key === 'n' || key === 't' || (typeof flat[key] === 'object' && flat[key] !== null)) return undefined;
  return flat as Record<string, number | string | boolean>;
}
