/** The kill switch of in-process simulations (lib/memory/kill-switch.ts), killed here or from another thread. */
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { killSwitch } from '../../lib/memory/kill-switch';

const HUNG = Symbol('hung');
/** The promise's value, or HUNG if it has not settled within a few turns of the event loop. */
async function settledSoon<T>(promise: Promise<T>): Promise<T | typeof HUNG> {
  return Promise.race([promise, new Promise<typeof HUNG>((resolve) => setTimeout(() => resolve(HUNG), 50))]);
}

class Port {
  calls = 0;
  async call(value: number): Promise<number> {
    this.calls++;
    return value;
  }
  slow(value: number, release: Promise<void>): Promise<number> {
    this.calls++;
    return release.then(() => value);
  }
}

/** Sets slot `slot` of `buffer` from a worker thread and waits for it to end. */
async function setFromAnotherThread(buffer: SharedArrayBuffer, slot: number): Promise<void> {
  const worker = new Worker(`const { workerData } = require('node:worker_threads'); Atomics.store(new Int32Array(workerData.buffer), workerData.slot, 1);`, { eval: true, workerData: { buffer, slot } });
  await new Promise<void>((resolve, reject) => worker.once('exit', () => resolve()).once('error', reject));
}

describe('killSwitch', () => {
  it('passes calls through until killed, then hangs new calls and drops results in flight', async () => {
    const sw = killSwitch();
    const port = sw.wrap(new Port());
    expect(await port.call(1)).toBe(1);
    let release!: () => void;
    const inFlight = port.slow(2, new Promise<void>((r) => (release = r)));
    sw.kill();
    release();
    expect(await settledSoon(inFlight)).toBe(HUNG);
    expect(await settledSoon(port.call(3))).toBe(HUNG);
    expect(sw.dead).toBe(true);
  });

  it('is killed by another thread through its slot in shared memory, and the other slots are not', async () => {
    const flags = new Int32Array(new SharedArrayBuffer(4 * 4));
    const victim = killSwitch({ shared: { flags, slot: 2 } });
    const other = killSwitch({ shared: { flags, slot: 1 } });
    const inner = new Port();
    const port = victim.wrap(inner);
    const otherPort = other.wrap(new Port());
    let release!: () => void;
    const inFlight = port.slow(7, new Promise<void>((r) => (release = r)));
    expect(victim.dead).toBe(false);

    await setFromAnotherThread(flags.buffer as SharedArrayBuffer, 2);
    release();
    expect(await settledSoon(inFlight)).toBe(HUNG);
    const callsBefore = inner.calls;
    expect(await settledSoon(port.call(8))).toBe(HUNG);
    // The call never reached the port: a killed unit does nothing anyone can see.
    expect(inner.calls).toBe(callsBefore);
    expect(victim.dead).toBe(true);
    expect(other.dead).toBe(false);
    expect(await otherPort.call(9)).toBe(9);
  });

  it('ends a long poll in progress at a shared kill when asked to (abortReceives)', async () => {
    const flags = new Int32Array(new SharedArrayBuffer(4));
    const sw = killSwitch({ abortReceives: true, shared: { flags, slot: 0 } });
    let signal: AbortSignal | undefined;
    const transport = sw.wrap({
      receive: (_queue: string, options: { signal?: AbortSignal }) => {
        signal = options.signal;
        return new Promise<string[]>(() => undefined);
      },
      ping: () => 'pong',
    });
    void transport.receive('q', {});
    expect(signal?.aborted).toBe(false);
    await setFromAnotherThread(flags.buffer as SharedArrayBuffer, 0);
    // The flag is seen at the unit's next call; that call is what aborts the poll.
    expect(await settledSoon(Promise.resolve(transport.ping()))).toBe(HUNG);
    expect(signal?.aborted).toBe(true);
  });
});
