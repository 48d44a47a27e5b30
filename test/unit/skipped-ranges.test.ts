/** The positions a consumer skipped per channel lineage (lib/runtime/skipped-ranges.ts). */
import { describe, expect, it } from 'vitest';
import { addSkipped, takeSkipped, type Range } from '../../lib/runtime/skipped-ranges';

describe('skipped ranges', () => {
  it('merge what touches, and count each skipped position once when it is sent again', () => {
    const ranges: Range[] = [];
    addSkipped(ranges, 3, 6);
    addSkipped(ranges, 6, 8);
    addSkipped(ranges, 20, 25);
    addSkipped(ranges, 9, 9);
    expect(ranges).toEqual([[3, 8], [20, 25]]);
    // Sent again: 0..10 (3..7 were skipped), then 4..22 (20, 21 still are).
    expect(takeSkipped(ranges, 0, 10)).toBe(5);
    expect(takeSkipped(ranges, 4, 22)).toBe(2);
    expect(ranges).toEqual([[22, 25]]);
    expect(takeSkipped(ranges, 23, 24)).toBe(1);
    expect(ranges).toEqual([[22, 23], [24, 25]]);
  });

  it('keep the newest ranges past their bound', () => {
    const ranges: Range[] = [];
    for (let i = 0; i < 40; i++) addSkipped(ranges, i * 10, i * 10 + 1);
    expect(ranges.length).toBe(32);
    expect(ranges[0]).toEqual([80, 81]);
  });
});
