/**
 * A lifecycle: the states of a thing (a job, a task unit, a checkpoint) and the moves allowed out
 * of each, in one table. Where the state a move starts from is known to the code, a move the table
 * does not allow is a type error (`move('RUNNING', 'STARTING')` compiles only if the table says
 * so); where it is known only at run time, `check` throws, and a store makes its write
 * conditional on `onlyFrom`, so an illegal move is refused rather than written.
 */
import type { Condition } from '../ports/metadata-store';

/** The states `from` may move to under moves `M`. */
export type NextOf<M, From extends keyof M> = M[From] extends readonly (infer T)[] ? T : never;

export class IllegalTransition extends Error {
  override name = 'IllegalTransition';
  constructor(
    readonly lifecycle: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`${lifecycle}: no move from ${from} to ${to}`);
  }
}

export class Lifecycle<S extends string, M extends { readonly [K in S]: readonly string[] }> {
  /** The states in the order declared; a state's position is its `code`. */
  readonly states: readonly S[];
  /** allowed[from * n + to] = 1: the table as numbers, for hot paths that keep states as codes. */
  private readonly allowed: Uint8Array;

  constructor(
    readonly name: string,
    readonly moves: M,
  ) {
    this.states = Object.keys(moves) as S[];
    const n = this.states.length;
    this.allowed = new Uint8Array(n * n);
    for (const from of this.states) for (const to of moves[from]) this.allowed[this.code(from) * n + this.code(to as S)] = 1;
  }

  code(state: S): number {
    const i = this.states.indexOf(state);
    if (i < 0) throw new Error(`${this.name}: unknown state '${String(state)}'`);
    return i;
  }

  can(from: S, to: S): boolean {
    return this.canCode(this.code(from), this.code(to));
  }

  /** `can` on codes (see `code`). */
  canCode(from: number, to: number): boolean {
    return this.allowed[from * this.states.length + to] === 1;
  }

  /** `to`, when `from` may move to it; an IllegalTransition otherwise. */
  check(from: S, to: S): S {
    if (!this.can(from, to)) throw new IllegalTransition(this.name, from, to);
    return to;
  }

  /** `check` on codes. */
  checkCode(from: number, to: number): number {
    if (!this.canCode(from, to)) throw new IllegalTransition(this.name, this.states[from] ?? `#${from}`, this.states[to] ?? `#${to}`);
    return to;
  }

  /** A move whose starting state the code knows: the type allows only the table's moves. */
  move<F extends S, T extends NextOf<M, F>>(from: F, to: T): T {
    this.check(from, to as S & T);
    return to;
  }

  /** The states that may move to `to`. */
  sources(to: S): S[] {
    return this.states.filter((from) => this.can(from, to));
  }

  /** No move out of it. */
  isFinal(state: S): boolean {
    return this.moves[state].length === 0;
  }
}

/**
 * A lifecycle from its table. Every target must be a declared state (a type error otherwise); the
 * order of the keys gives the states their codes.
 */
export function lifecycle<const M extends { readonly [K in keyof M]: readonly (keyof M & string)[] }>(name: string, moves: M): Lifecycle<keyof M & string, M> {
  return new Lifecycle<keyof M & string, M>(name, moves);
}

/**
 * The conditions of a write that holds only while attribute `attr` is one of `states` (the port's
 * conditions are ANDed: one `=` for a single state, else a `<>` for every other state).
 */
export function onlyFrom<S extends string>(lifecycle: Lifecycle<S, { readonly [K in S]: readonly string[] }>, states: readonly S[], attr = 'status'): Condition[] {
  if (states.length === 1) return [{ attr, op: '=', value: states[0]! }];
  return lifecycle.states.filter((s) => !states.includes(s)).map((s) => ({ attr, op: '<>', value: s }));
}
