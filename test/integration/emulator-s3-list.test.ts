/**
 * The embedded emulator's S3 listing patch (lib/local/emulator.ts S3_LIST_PATCH): moto's key store
 * lists from a copy of its key names and reads each from the live store, so a key deleted while a
 * listing runs failed the listing (an HTML error page, a KeyError inside). Checked on moto's own
 * key store, deterministically: the deletion happens between two keys of the listing.
 */
import { describe, expect, it } from 'vitest';
import { S3_LIST_PATCH } from '../../lib/local/emulator';
import { runMotoPython as run } from '../setup/moto-python';

const SCENARIO = `
from moto.s3.utils import _VersionedKeyStore
store = _VersionedKeyStore()
for i in range(5):
    store[f"progress/{i}/1.json"] = f"v{i}"
store["progress/2/1.json"] = "v2b"  # a second version: the listing takes the newest
listed = []
try:
    for key, value in store.items():
        listed.append((key, value))
        if len(listed) == 1:
            dict.__delitem__(store, "progress/3/1.json")  # deleted while the listing runs (pop, without FakeKey disposal)
    print("ok", len(listed), dict(listed).get("progress/2/1.json"))
except KeyError as e:
    print("KeyError", e)
`;

describe('embedded emulator: S3 listings while keys are deleted', () => {
  it('moto as released fails the listing; patched, it lists what its copy held', async () => {
    expect(await run(SCENARIO)).toMatch(/^KeyError/);
    expect(await run(`${S3_LIST_PATCH}\n${SCENARIO}`)).toBe('ok 5 v2b');
  });
});
