import { describe, expect, it } from 'vitest';
import type { Json } from '../../lib/api/functions';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { decodeChannelMessage, MalformedMessageError } from '../../lib/runtime/messages';
import { rowShapeOf, rowText } from '../../lib/runtime/record-rows';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import type { ChannelTransport, OutboundMessage } from '../../lib/ports/channels';
import { seededRandom } from '../../bench/lib/random';

const forward: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };

/** Writes `records` on one channel and returns what was sent, and the records a consumer decodes. */
async function roundTrip(records: readonly unknown[], maxMessageBytes = 262_144): Promise<{ sent: OutboundMessage[]; decoded: Json[] }> {
  const sent: OutboundMessage[] = [];
  const transport = { send: async (_queue: string, messages: readonly OutboundMessage[]) => void sent.push(...messages) } as unknown as ChannelTransport;
  const writer = new RecordWriter({ edge: forward, producerIndex: 0, consumerParallelism: 1, attempt: 1, queueOf: () => 'q', transport, maxMessageBytes });
  for (const r of records) writer.emit(r as Json);
  await writer.flush();
  const decoded = sent.map((m) => decodeChannelMessage(m.body)).flatMap((m) => (m.t === 'd' ? m.r : []));
  return { sent, decoded };
}

class Money {
  constructor(
    readonly a: number,
    readonly b: string,
  ) {}
  toJSON(): string {
    return `${this.a} ${this.b}`;
  }
}

/** What a consumer must get for `record`: what JSON would have carried, keys in the same order. */
const asJson = (record: unknown): string => JSON.stringify(record);

describe('records as rows of one shape', () => {
  it('a message of same-shaped objects carries the keys once and each record as its values', async () => {
    const records = Array.from({ length: 1000 }, (_, i) => ({ ts: 1_767_225_600_000 + i, user: `user-${i % 7}`, action: 'view', amount: i % 3, segment: 'gold' }));
    const { sent, decoded } = await roundTrip(records);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body).toContain('"k":["ts","user","action","amount","segment"],"c":[[1767225600000,"user-0","view",0,"gold"],');
    expect(decoded).toEqual(records);
    // Smaller than the records as JSON objects by their keys.
    expect(Buffer.byteLength(sent[0]!.body)).toBeLessThan(0.6 * Buffer.byteLength(JSON.stringify(records)));
  });

  it('delivers whatever JSON would have, in order, for records that are not rows of the message shape', async () => {
    const withProto = JSON.parse('{"__proto__":{"x":1},"a":2}') as Json;
    const records: unknown[] = [
      { a: 1, b: 'x' },
      { b: 'y', a: 2 }, // other key order
      { a: 3 }, // fewer keys
      { a: 4, b: 'z', c: null }, // more keys
      { a: undefined, b: 'w' }, // JSON leaves the undefined key out
      { a: () => 1, b: 'f' }, // and a function
      { a: new Date(Date.UTC(2026, 0, 1)), b: 'date' }, // a value with toJSON
      { a: { nested: [1, { deep: 'ü' }] }, b: [null, true] },
      [1, 2], // a record that is an array
      'a string',
      42,
      null,
      {},
      withProto,
      { 2: 'two', 1: 'one', z: 'zed' }, // integer-like keys come first in any object
      { a: Number.NaN, b: Infinity }, // JSON: null
      new Money(7, 'EUR'), // own keys a and b, but JSON writes what its toJSON returns
      Object.assign(Object.create({ inherited: 1 }) as object, { a: 6, b: 'own keys only' }),
      { a: 5, b: 'last' },
    ];
    const { decoded } = await roundTrip(records);
    expect(decoded.map(asJson)).toEqual(records.map(asJson));
    const proto = decoded[records.indexOf(withProto)] as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.hasOwn(proto, '__proto__')).toBe(true);
    expect(Object.keys(decoded[0] as object)).toEqual(['a', 'b']);
  });

  it('a message whose first record is not an object sends JSON records', async () => {
    const { sent, decoded } = await roundTrip(['line', { a: 1 }, { a: 2 }]);
    expect(sent[0]!.body).toContain('"r":["line",{"a":1},{"a":2}]');
    expect(decoded).toEqual(['line', { a: 1 }, { a: 2 }]);
  });

  it('randomized streams of a few shapes: every message within its size, its stated UTF-8 size exact, every record as JSON would carry it', async () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const random = seededRandom(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const shapes = [['ts', 'user', 'n'], ['ключ', 'v'], ['a'], ['x', 'y', 'z', '😀']];
      const value = (): (() => unknown) => pick([() => Math.floor(random() * 1e6), () => `s-${Math.floor(random() * 99)} ${pick(['', 'naïve', '☃', '😀'])}`, () => null, () => random() < 0.5, () => [1, 'two'], () => undefined]);
      const records = Array.from({ length: 3000 }, () => {
        const roll = random();
        if (roll < 0.05) return pick(['text', 7, null, [3]]);
        const keys = roll < 0.1 ? [...pick(shapes)].reverse() : pick(shapes);
        const r: Record<string, unknown> = {};
        for (const k of keys) r[k] = value()();
        if (random() < 0.05) r.extra = 1;
        return r;
      });
      const maxMessageBytes = 1500 + Math.floor(random() * 6000);
      const { sent, decoded } = await roundTrip(records, maxMessageBytes);
      expect(decoded.map(asJson), `seed ${seed}`).toEqual(records.map(asJson));
      for (const m of sent) {
        const bytes = Buffer.byteLength(m.body);
        expect(bytes, `seed ${seed}`).toBeLessThanOrEqual(maxMessageBytes);
        if (m.bytes !== undefined) expect(m.bytes, `seed ${seed}: stated size`).toBe(bytes);
      }
      expect(sent.some((m) => m.body.includes('"k":'))).toBe(true);
    }
  });

  it('decodes more shapes than it compiles builders for', async () => {
    const records = Array.from({ length: 600 }, (_, i) => ({ [`key-${i}`]: i, same: 'x' }));
    const { decoded } = await roundTrip(records, 400);
    expect(decoded).toEqual(records);
  });

  it('a record too large for a message is refused naming its edge', async () => {
    await expect(roundTrip([{ a: 'x'.repeat(3000) }], 2000)).rejects.toThrow(/a record on edge e0 is \d+ bytes/);
  });

  it('refuses malformed rows with a clear error', () => {
    const body = (fields: string) => `{"p":0,"a":1,"s":0,"l":1,"n":0,"t":"d",${fields}}`;
    expect(decodeChannelMessage(body('"k":["a","b"],"c":[[1,2],{"v":"x"}]'))).toMatchObject({ r: [{ a: 1, b: 2 }, 'x'] });
    for (const [fields, why] of [
      ['"k":"a","c":[]', /malformed keys/],
      ['"k":["__proto__"],"c":[[1]]', /malformed keys/],
      ['"k":["a","a"],"c":[[1,2]]', /malformed keys/],
      ['"k":["a","b"],"c":[[1]]', /1 values for 2 keys/],
      ['"k":["a"],"c":[7]', /neither a row nor a record/],
      ['"k":["a"],"c":{"a":1}', /not a list/],
    ] as const) {
      expect(() => decodeChannelMessage(body(fields))).toThrow(MalformedMessageError);
      expect(() => decodeChannelMessage(body(fields))).toThrow(why);
    }
  });

  it('a shape is a plain object\'s own keys, without __proto__, and not too wide', () => {
    expect(rowShapeOf({ a: 1, b: 2 })?.keys).toEqual(['a', 'b']);
    for (const r of ['x', 1, null, [1], {}, JSON.parse('{"__proto__":1}') as Json, Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]))]) expect(rowShapeOf(r)).toBeUndefined();
    const shape = rowShapeOf({ a: 1, b: 2 })!;
    expect(rowText({ a: 3, b: 'x' }, shape)).toBe('[3,"x"]');
    expect(rowText({ b: 'x', a: 3 }, shape)).toBe('{"v":{"b":"x","a":3}}');
  });
});
