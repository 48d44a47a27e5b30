/**
 * Names a side output: a second stream of records a keyed process function (or a window, for its
 * late data) emits besides its main output. `ctx.output(tag, record)` emits, and
 * `stream.getSideOutput(tag)` reads it as a stream of its own.
 */
import type { Json } from './json';

const TAG_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export class OutputTag<T extends Json> {
  /** The element type, for the compiler only. */
  declare readonly __type?: T;

  constructor(readonly id: string) {
    if (!TAG_PATTERN.test(id)) throw new Error(`output tag '${id}' must be 1-32 characters of a-z, 0-9 and '-', starting with a letter`);
  }
}
