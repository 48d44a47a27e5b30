/**
 * A task unit's own view of the ports, for in-process simulations and tests: after `kill()` every
 * call hangs and every result still in flight is dropped, so the unit does nothing more that anyone
 * can see, as after SIGKILL. With `abortReceives`, a long poll in progress ends at the kill too (at
 * SQS a dead process's pending poll may still take a message and hide it for its visibility
 * timeout; a test that is not about that wait leaves it out). With `shared`, another thread kills
 * the unit by setting its slot in shared memory: seen at the unit's next call or result, however
 * busy the unit's own thread is (as SIGKILL does not wait for a process).
 */
import type { ReceiveOptions } from '../ports/channels';

export interface KillSwitch {
  wrap<T extends object>(target: T): T;
  kill(): void;
  readonly dead: boolean;
}

export function killSwitch(options: { abortReceives?: boolean; shared?: { flags: Int32Array; slot: number } } = {}): KillSwitch {
  let killedHere = false;
  const killed = new AbortController();
  const kill = () => {
    killedHere = true;
    killed.abort();
  };
  const { shared } = options;
  const isDead = (): boolean => {
    if (killedHere) return true;
    if (!shared || Atomics.load(shared.flags, shared.slot) === 0) return false;
    kill();
    return true;
  };
  const never = () => new Promise<never>(() => undefined);
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value = Reflect.get(t, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (isDead()) return never();
          if (options.abortReceives && prop === 'receive') {
            const receive = args[1] as ReceiveOptions;
            args[1] = { ...receive, signal: receive.signal ? AbortSignal.any([receive.signal, killed.signal]) : killed.signal };
          }
          const out = value.apply(t, args);
          if (!(out instanceof Promise)) return out;
          return out.then(
            (v) => (isDead() ? never() : v),
            (e) => (isDead() ? never() : Promise.reject(e)),
          );
        };
      },
    });
  return {
    wrap,
    kill,
    get dead() {
      return isDead();
    },
  };
}
