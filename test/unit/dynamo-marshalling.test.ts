/**
 * The DynamoDB adapter's marshalling: the attribute values it writes, and that every metadata value
 * comes back as it went in, numbers as JS numbers.
 */
import { describe, expect, it } from 'vitest';
import { marshalItem, marshalValue, unmarshalItem } from '../../lib/aws/dynamo-metadata';
import type { MetaItem } from '../../lib/ports/metadata-store';

describe('DynamoDB marshalling', () => {
  it('writes strings, numbers, booleans, null, lists and maps as DynamoDB attribute values', () => {
    expect(marshalItem({ s: 'x', n: 1.5, b: true, z: null, l: [1, 'a', [false]], m: { k: { deep: -2 } } })).toEqual({
      s: { S: 'x' },
      n: { N: '1.5' },
      b: { BOOL: true },
      z: { NULL: true },
      l: { L: [{ N: '1' }, { S: 'a' }, { L: [{ BOOL: false }] }] },
      m: { M: { k: { M: { deep: { N: '-2' } } } } },
    });
    expect(marshalValue('RUNNING')).toEqual({ S: 'RUNNING' });
    expect(marshalValue(0)).toEqual({ N: '0' });
  });

  it('leaves out object members that are undefined, as JSON would', () => {
    expect(marshalItem({ a: 1, gone: undefined, m: { keep: 'x', gone: undefined } } as unknown as MetaItem)).toEqual({ a: { N: '1' }, m: { M: { keep: { S: 'x' } } } });
  });

  it('gives back what it was given, without the key attributes', () => {
    const item: MetaItem = {
      name: 'demo',
      empty: '',
      createdAt: 1_767_225_600_000,
      ratio: 0.1 + 0.2,
      watermark: Number.MIN_SAFE_INTEGER,
      large: 2 ** 60,
      tiny: 5e-324,
      ok: false,
      none: null,
      units: [{ unitId: 'u-0', subtasks: ['t#0'], stats: {} }],
      nested: { list: [], map: {} },
    };
    const back = unmarshalItem({ ...marshalItem(item), pk: { S: 'JOB#j' }, sk: { S: 'META' } });
    expect(back).toEqual(item);
    expect(typeof back.large).toBe('number');
  });
});
