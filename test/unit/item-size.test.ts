import { describe, expect, it } from 'vitest';
import { checkItemSize, checkValueRules, itemSize, MAX_ITEM_BYTES, valueSize } from '../../lib/ports/item-size';

describe('DynamoDB item sizes (as AWS documents them)', () => {
  it('counts strings by UTF-8 bytes and numbers by significant digits', () => {
    expect(valueSize('abc')).toBe(3);
    expect(valueSize('é')).toBe(2);
    expect(valueSize(123)).toBe(3); // ceil(3 / 2) + 1
    expect(valueSize(1_000_000)).toBe(2); // trailing zeros do not count
    expect(valueSize(0.1)).toBe(2);
    expect(valueSize(-12.5)).toBe(3);
    expect(valueSize(true)).toBe(1);
    expect(valueSize(null)).toBe(1);
  });

  it('counts 3 bytes per list or map and 1 per element, map keys included', () => {
    expect(valueSize([])).toBe(3);
    expect(valueSize([true, 'ab'])).toBe(3 + (1 + 1) + (1 + 2));
    expect(valueSize({ a: 1 })).toBe(3 + 1 + 1 + 2);
    expect(itemSize('JOB#x', 'META', { n: 1, s: 'hi' })).toBe(2 + 5 + 2 + 4 + (1 + 2) + (1 + 2));
  });

  it('refuses an item over 400 KB by name, and numbers DynamoDB cannot hold', () => {
    const near = 'x'.repeat(MAX_ITEM_BYTES - 100);
    expect(checkItemSize('p', 's', { v: near })).toBeLessThanOrEqual(MAX_ITEM_BYTES);
    expect(() => checkItemSize('JOB#j', 'UNIT#u', { v: near, w: 'y'.repeat(200) })).toThrow(/JOB#j \/ UNIT#u would be 409\d+ bytes/);
    expect(() => checkValueRules(1e200, 'big')).toThrow(/'big'.*1E126/);
    expect(() => checkValueRules(1e-200, 'tiny')).toThrow(/1E-130/);
    expect(() => checkValueRules(0, 'zero')).not.toThrow();
  });
});
