/** Contract of BlobStore (S3 semantics), run against every implementation. */
import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../lib/ports/blob-store';
import { uniqueName } from './names';

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

export function blobStoreContract(label: string, make: () => Promise<BlobStore>): void {
  describe(`BlobStore contract: ${label}`, () => {
    it('puts and gets strings and bytes; missing objects are undefined', async () => {
      const b = await make();
      const p = uniqueName('snap');
      await b.put(`${p}/a.json`, '{"ü":1}');
      const bytes = new Uint8Array([0, 1, 2, 255]);
      await b.put(`${p}/b.bin`, bytes);
      bytes[0] = 9; // the store kept its own copy
      expect(text(await b.get(`${p}/a.json`))).toBe('{"ü":1}');
      expect([...(await b.get(`${p}/b.bin`))!]).toEqual([0, 1, 2, 255]);
      expect(await b.get(`${p}/missing`)).toBeUndefined();
      expect(await b.head(`${p}/a.json`)).toEqual({ key: `${p}/a.json`, size: 8 });
      expect(await b.head(`${p}/missing`)).toBeUndefined();
      expect(b.location).toMatch(/^\w+:\/\/./);
    });

    it('reads byte ranges, clamped to the object size', async () => {
      const b = await make();
      const key = `${uniqueName('r')}/obj`;
      await b.put(key, '0123456789');
      expect(text(await b.getRange(key, 2, 5))).toBe('234');
      expect(text(await b.getRange(key, 7, 100))).toBe('789');
      expect(text(await b.getRange(key, 0, 10))).toBe('0123456789');
      expect((await b.getRange(key, 4, 4)).length).toBe(0);
      expect((await b.getRange(key, 10, 20)).length).toBe(0);
      await expect(b.getRange(`${key}-missing`, 0, 1)).rejects.toThrow(/does not exist/);
    });

    it('lists a prefix in key order and copies objects', async () => {
      const b = await make();
      const p = uniqueName('ls');
      for (const k of ['b', 'a/2', 'a/10', 'a/1', 'c d+e']) await b.put(`${p}/${k}`, k);
      await b.put(`${p}x/outside`, 'no');
      expect((await b.list(`${p}/`)).map((o) => o.key)).toEqual([`${p}/a/1`, `${p}/a/10`, `${p}/a/2`, `${p}/b`, `${p}/c d+e`]);
      expect(await b.list(`${p}/a/1`)).toEqual([
        { key: `${p}/a/1`, size: 3 },
        { key: `${p}/a/10`, size: 4 },
      ]);
      await b.copy(`${p}/c d+e`, `${p}/copied/c d+e`);
      expect(text(await b.get(`${p}/copied/c d+e`))).toBe('c d+e');
      await expect(b.copy(`${p}/missing`, `${p}/x`)).rejects.toThrow(/does not exist/);
      expect(await b.list(uniqueName('none'))).toEqual([]);
    });

    it('lists and deletes more than 1000 objects (paging, chunks) and ignores missing keys', async () => {
      const b = await make();
      const p = uniqueName('many');
      const keys = Array.from({ length: 1010 }, (_, i) => `${p}/${String(i).padStart(4, '0')}`);
      for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => b.put(k, 'x')));
      const listed = await b.list(`${p}/`);
      expect(listed.map((o) => o.key)).toEqual(keys);
      // Page by page (up to 1000 keys each, in key order); a listing told to stop after the first stops there.
      const pages: number[] = [];
      expect((await b.list(`${p}/`, { until: (page) => (pages.push(page.length), false) })).length).toBe(1010);
      expect(pages.reduce((n, k) => n + k, 0)).toBe(1010);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      expect(Math.max(...pages)).toBeLessThanOrEqual(1000);
      const first = await b.list(`${p}/`, { until: () => true });
      expect(first.length).toBe(pages[0]);
      expect(first.map((o) => o.key)).toEqual(keys.slice(0, pages[0]));
      await b.delete([...keys, `${p}/never-existed`]);
      expect(await b.list(`${p}/`)).toEqual([]);
      await b.delete([]);
    });
  });
}
