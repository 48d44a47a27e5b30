/** Contract of MetadataStore (DynamoDB semantics), run against every implementation. */
import { describe, expect, it } from 'vitest';
import type { MetadataStore, MetaItem } from '../../lib/ports/metadata-store';
import { uniqueName } from './names';

export function metadataStoreContract(label: string, make: () => Promise<MetadataStore>): void {
  describe(`MetadataStore contract: ${label}`, () => {
    const item: MetaItem = {
      s: 'text',
      empty: '',
      n: 42,
      neg: -1.5,
      yes: true,
      no: false,
      nothing: null,
      list: [1, 'two', false, null, [3], { four: 4 }],
      nested: { a: { b: [{ c: 'deep' }] }, e: {} },
    };

    it('round-trips every value type and returns undefined for a missing item', async () => {
      const m = await make();
      const pk = uniqueName('job');
      expect(await m.put(pk, 'meta', item)).toBe(true);
      expect(await m.get(pk, 'meta')).toEqual(item);
      expect(await m.get(pk, 'other')).toBeUndefined();
      expect(await m.get(uniqueName('nope'), 'meta')).toBeUndefined();
    });

    it('put replaces the whole item and hands out copies', async () => {
      const m = await make();
      const pk = uniqueName('job');
      await m.put(pk, 'k', { a: 1, b: 2 });
      await m.put(pk, 'k', { c: 3 });
      const got = (await m.get(pk, 'k'))!;
      expect(got).toEqual({ c: 3 });
      got.c = 99;
      expect(await m.get(pk, 'k')).toEqual({ c: 3 });
    });

    it('writes nothing when a put condition fails (fencing by attempt number)', async () => {
      const m = await make();
      const pk = uniqueName('task');
      expect(await m.put(pk, 't1', { attempt: 1 }, [{ attr: 'attempt', op: 'notExists' }])).toBe(true);
      expect(await m.put(pk, 't1', { attempt: 9 }, [{ attr: 'attempt', op: 'notExists' }])).toBe(false);
      expect(await m.put(pk, 't1', { attempt: 3 }, [{ attr: 'attempt', op: '<', value: 3 }])).toBe(true);
      expect(await m.put(pk, 't1', { attempt: 2 }, [{ attr: 'attempt', op: '<', value: 2 }])).toBe(false);
      expect(await m.get(pk, 't1')).toEqual({ attempt: 3 });
      // A missing item has no attributes: comparisons fail, `exists` fails.
      expect(await m.put(pk, 'new', { x: 1 }, [{ attr: 'attempt', op: '<', value: 5 }])).toBe(false);
      expect(await m.put(pk, 'new', { x: 1 }, [{ attr: 'x', op: 'exists' }])).toBe(false);
      expect(await m.get(pk, 'new')).toBeUndefined();
    });

    it('evaluates comparisons like DynamoDB', async () => {
      const m = await make();
      const pk = uniqueName('cmp');
      const stored = { n: 5, s: 'beta', b: true, z: null };
      await m.put(pk, 'k', stored);
      // Rewriting the same item under a condition tells whether the condition held.
      const holds = (cond: Parameters<MetadataStore['put']>[3]) => m.put(pk, 'k', stored, cond);
      expect(await holds([{ attr: 'n', op: '=', value: 5 }])).toBe(true);
      expect(await holds([{ attr: 'n', op: '<>', value: 5 }])).toBe(false);
      expect(await holds([{ attr: 'n', op: '<=', value: 5 }, { attr: 'n', op: '>=', value: 5 }])).toBe(true);
      expect(await holds([{ attr: 'n', op: '>', value: 5 }])).toBe(false);
      expect(await holds([{ attr: 'n', op: '<', value: 10 }])).toBe(true);
      expect(await holds([{ attr: 's', op: '<', value: 'gamma' }, { attr: 's', op: '>', value: 'alpha' }])).toBe(true);
      expect(await holds([{ attr: 's', op: '=', value: 'beta' }, { attr: 'n', op: '=', value: 6 }])).toBe(false);
      expect(await holds([{ attr: 'b', op: '=', value: true }])).toBe(true);
      expect(await holds([{ attr: 'b', op: '<>', value: false }])).toBe(true);
      expect(await holds([{ attr: 'z', op: 'exists' }])).toBe(true);
      // `<>` holds for a missing attribute; `=` does not.
      expect(await holds([{ attr: 'missing', op: '<>', value: 1 }])).toBe(true);
      expect(await holds([{ attr: 'missing', op: '=', value: 1 }])).toBe(false);
      expect(await holds([{ attr: 'missing', op: 'notExists' }])).toBe(true);
    });

    it('update sets, adds and removes, creating the item, and returns the new item', async () => {
      const m = await make();
      const pk = uniqueName('ckpt');
      expect(await m.update(pk, 'c', { add: { acks: 1 }, set: { state: 'PENDING' } })).toEqual({ acks: 1, state: 'PENDING' });
      expect(await m.update(pk, 'c', { add: { acks: 2, bytes: 10 }, set: { region: { r1: [1, 2] } } })).toEqual({
        acks: 3,
        bytes: 10,
        state: 'PENDING',
        region: { r1: [1, 2] },
      });
      expect(await m.update(pk, 'c', { remove: ['region', 'not-there'], set: { state: 'DONE' } })).toEqual({ acks: 3, bytes: 10, state: 'DONE' });
      expect(await m.get(pk, 'c')).toEqual({ acks: 3, bytes: 10, state: 'DONE' });
      expect(await m.update(pk, 'c', { add: { acks: -3 } })).toEqual({ acks: 0, bytes: 10, state: 'DONE' });
    });

    it('update changes nothing when a condition fails', async () => {
      const m = await make();
      const pk = uniqueName('ckpt');
      expect(await m.update(pk, 'c', { set: { a: 1 } }, [{ attr: 'a', op: 'exists' }])).toBeUndefined();
      expect(await m.get(pk, 'c')).toBeUndefined();
      await m.put(pk, 'c', { state: 'DONE', n: 1 });
      expect(await m.update(pk, 'c', { set: { state: 'X' }, add: { n: 1 } }, [{ attr: 'state', op: '=', value: 'PENDING' }])).toBeUndefined();
      expect(await m.get(pk, 'c')).toEqual({ state: 'DONE', n: 1 });
      expect(await m.update(pk, 'c', { add: { n: 1 } }, [{ attr: 'state', op: '=', value: 'DONE' }])).toEqual({ state: 'DONE', n: 2 });
    });

    it('lets exactly one of many concurrent conditional writers win', async () => {
      const m = await make();
      const pk = uniqueName('lease');
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => m.put(pk, 'owner', { owner: i }, [{ attr: 'owner', op: 'notExists' }])),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      // Atomic increments: each of 24 concurrent adds sees its own count, several rounds over (a
      // threaded emulator that checks and writes apart hands two of them the same count now and then).
      for (let round = 0; round < 4; round++) {
        const counters = await Promise.all(Array.from({ length: 24 }, () => m.update(pk, 'counter', { add: { n: 1 } })));
        expect(counters.map((c) => c!.n).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 24 }, (_, i) => round * 24 + i + 1));
      }
    });

    it('queries a partition in sort-key order, by prefix, across pages', async () => {
      const m = await make();
      const pk = uniqueName('part');
      await m.put(uniqueName('part'), 'region#1', { other: true });
      const keys = ['region#10', 'region#2', 'task#1', 'region#1', 'regio', 'z', 'Region#0'];
      for (const sk of keys) await m.put(pk, sk, { sk_copy: sk });
      const all = await m.query(pk);
      expect(all.map((r) => r.sk)).toEqual([...keys].sort());
      expect(all.every((r) => r.pk === pk && r.item.sk_copy === r.sk)).toBe(true);
      expect((await m.query(pk, 'region#')).map((r) => r.sk)).toEqual(['region#1', 'region#10', 'region#2']);
      expect(await m.query(pk, 'nothing')).toEqual([]);
      expect(await m.query(uniqueName('empty'))).toEqual([]);

      // More than one DynamoDB page (1 MB).
      const big = uniqueName('big');
      const blob = 'x'.repeat(9_000);
      await Promise.all(Array.from({ length: 150 }, (_, i) => m.put(big, `k${String(i).padStart(3, '0')}`, { blob, i })));
      const many = await m.query(big, 'k');
      expect(many).toHaveLength(150);
      expect(many.map((r) => r.item.i)).toEqual(Array.from({ length: 150 }, (_, i) => i));
    });

    it('deletes items (a missing one is fine)', async () => {
      const m = await make();
      const pk = uniqueName('del');
      await m.put(pk, 'a', { v: 1 });
      await m.delete(pk, 'a');
      await m.delete(pk, 'never');
      expect(await m.get(pk, 'a')).toBeUndefined();
      expect(await m.query(pk)).toEqual([]);
    });

    it('refuses items over 400 KB, on put and on an update that grows one, and keeps what was stored', async () => {
      const m = await make();
      const pk = uniqueName('size');
      // Sizes that AWS and the emulator judge alike (moto's own limit is 405,000 bytes by its count).
      const under = 'x'.repeat(380 * 1024);
      expect(await m.put(pk, 'k', { blob: under, n: 1 })).toBe(true);
      await expect(m.put(pk, 'big', { blob: 'x'.repeat(410 * 1024) })).rejects.toThrow(/item size limit|maximum allowed size/);
      expect(await m.get(pk, 'big')).toBeUndefined();
      // Many attributes add up too (names count).
      const wide: Record<string, string> = {};
      for (let i = 0; i < 420; i++) wide[`attribute_${i}`] = 'y'.repeat(1000);
      await expect(m.put(pk, 'wide', wide)).rejects.toThrow(/item size limit|maximum allowed size/);
      await expect(m.update(pk, 'k', { set: { more: 'z'.repeat(40 * 1024) } })).rejects.toThrow(/item size limit|maximum allowed size/);
      expect(await m.get(pk, 'k')).toEqual({ blob: under, n: 1 });
    });

    it('refuses over-long keys and values nested deeper than 32 levels', async () => {
      const m = await make();
      const pk = uniqueName('keys');
      await expect(m.put(pk, 's'.repeat(1025), { a: 1 })).rejects.toThrow(/1024|sort key/i);
      await expect(m.put('p'.repeat(2049), 'k', { a: 1 })).rejects.toThrow(/2048|partition key/i);
      expect(await m.put(pk, 's'.repeat(1024), { a: 1 })).toBe(true);
      let deep: MetaItem = { leaf: 1 };
      for (let i = 0; i < 33; i++) deep = { d: deep };
      await expect(m.put(pk, 'deep', deep)).rejects.toThrow(/nested|depth/i);
      expect(await m.get(pk, 'deep')).toBeUndefined();
    });

    it('queries newest first and up to a limit, across pages', async () => {
      const m = await make();
      const pk = uniqueName('hist');
      for (let i = 0; i < 12; i++) await m.put(pk, `CKPT#${String(i).padStart(4, '0')}`, { i });
      await m.put(pk, 'OTHER', { i: -1 });
      expect((await m.query(pk, 'CKPT#', { newestFirst: true, limit: 3 })).map((r) => r.item.i)).toEqual([11, 10, 9]);
      expect((await m.query(pk, 'CKPT#', { limit: 2 })).map((r) => r.item.i)).toEqual([0, 1]);
      expect((await m.query(pk, 'CKPT#', { newestFirst: true })).map((r) => r.item.i)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      // A limit spanning DynamoDB pages (1 MB each).
      const big = uniqueName('bigpages');
      const blob = 'x'.repeat(100_000);
      await Promise.all(Array.from({ length: 25 }, (_, i) => m.put(big, `k${String(i).padStart(3, '0')}`, { blob, i })));
      expect((await m.query(big, 'k', { newestFirst: true, limit: 15 })).map((r) => r.item.i)).toEqual(Array.from({ length: 15 }, (_, i) => 24 - i));
      await expect(m.query(pk, '', { limit: 0 })).rejects.toThrow(/limit/);
    });

    it('rejects key attribute names, overlapping or empty changes and non-finite numbers before writing', async () => {
      const m = await make();
      const pk = uniqueName('bad');
      await expect(m.put(pk, 'k', { pk: 'x' })).rejects.toThrow(/'pk' is a key attribute/);
      await expect(m.update(pk, 'k', { set: { a: 1 }, remove: ['a'] })).rejects.toThrow(/more than one of set\/add\/remove/);
      await expect(m.put(pk, 'k', { a: Number.NaN })).rejects.toThrow(/finite/);
      await expect(m.put(pk, 'k', { a: 1 }, [{ attr: 'b', op: '<', value: true }])).rejects.toThrow(/booleans/);
      await expect(m.get('', 'k')).rejects.toThrow(/non-empty strings/);
      await expect(m.update(pk, 'k', {})).rejects.toThrow(/at least one attribute/);
      expect(await m.get(pk, 'k')).toBeUndefined();
    });
  });
}
