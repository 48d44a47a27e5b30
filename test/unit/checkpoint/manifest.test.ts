import { describe, expect, it } from 'vitest';
import { ManifestError, manifestKeys, parseManifest, regionRestore, serializeManifest } from '../../../lib/checkpoint';
import { manifest } from './helpers';

describe('manifest', () => {
  it('round-trips through JSON', () => {
    const m = manifest(4, [4, 2, null]);
    expect(parseManifest(serializeManifest(m))).toEqual(m);
    expect(manifestKeys(m)).toEqual(['k/4/s0', 'k/2/s1']);
  });

  it('tells recovery which checkpoint and snapshots restore a region', () => {
    const m = manifest(4, [4, 2, null]);
    const r = regionRestore(m, 'r1');
    expect(r.checkpointId).toBe(2);
    expect(r.state.get('s1')).toEqual([{ key: 'k/2/s1', bytes: 1 }]);
    expect(regionRestore(m, 'r2').checkpointId).toBeNull();
    expect(() => regionRestore(m, 'r9')).toThrow(ManifestError);
  });

  it('rejects what is not a valid manifest', () => {
    expect(() => parseManifest('{')).toThrow(/not JSON/);
    expect(() => parseManifest('{"format":"other"}')).toThrow(ManifestError);
    const future = manifest(2, [3]);
    expect(() => parseManifest(JSON.stringify(future))).toThrow(/after the manifest/);
  });
});
