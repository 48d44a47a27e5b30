/**
 * Property tests of the coordinator over random topologies and random orders of acknowledgements,
 * declines, task failures and recoveries, finished subtasks, triggers and time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CheckpointCoordinator,
  type CheckpointConfig,
  type CheckpointEffect,
  type CheckpointHistoryEntry,
  type CheckpointManifest,
  type SnapshotHandle,
} from '../../../lib/checkpoint';

type Command =
  | { k: 'trigger' }
  | { k: 'ack'; pick: number }
  | { k: 'decline'; pick: number }
  | { k: 'fail'; pick: number }
  | { k: 'recover'; pick: number }
  | { k: 'finish'; pick: number }
  | { k: 'advance'; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ k: 'trigger' as const }) },
  { weight: 20, arbitrary: fc.nat().map((pick) => ({ k: 'ack' as const, pick })) },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ k: 'decline' as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ k: 'fail' as const, pick })) },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ k: 'recover' as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ k: 'finish' as const, pick })) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 60 }).map((ms) => ({ k: 'advance' as const, ms })) },
);

const scenarioArb = fc.record({
  sizes: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 6 }),
  extraSources: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
  config: fc.record({
    handle: fc.constantFrom('global' as const, 'regional' as const),
    timeoutMs: fc.integer({ min: 30, max: 300 }),
    maxConcurrent: fc.integer({ min: 1, max: 3 }),
    whenBusy: fc.constantFrom('queue' as const, 'refuse' as const),
    maxQueued: fc.integer({ min: 0, max: 2 }),
    maxFailedRegionRatio: fc.constantFrom(0, 0.2, 0.34, 0.5, 1),
    maxConsecutiveRegionFailures: fc.integer({ min: 1, max: 4 }),
    retained: fc.integer({ min: 1, max: 3 }),
  }),
  commands: fc.array(commandArb, { minLength: 1, maxLength: 200, size: 'max' }),
});

interface Ack {
  subtask: string;
  id: number;
  state: SnapshotHandle[];
  at: number;
}

interface Run {
  log: CheckpointEffect[];
  acks: Ack[];
  /** Log position and subtask of each taskFailed call. */
  failures: { at: number; subtask: string }[];
  /** Log position at which each subtask was reported finished (or -1 at the start). */
  finishedAt: Map<string, number>;
  coordinator: CheckpointCoordinator;
  regionOf: Map<string, string>;
  regionSubtasks: Map<string, readonly string[]>;
  /** Calls after which the newest history entry with counters disagreed with the live counters. */
  counterMismatches: string[];
  config: Required<Pick<CheckpointConfig, 'handle' | 'maxFailedRegionRatio' | 'maxConsecutiveRegionFailures'>>;
}

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function simulate(s: Scenario): Run {
  const regions = s.sizes.map((n, i) => ({ id: `r${i}`, subtasks: Array.from({ length: n }, (_, j) => `v${i}#${j}`) }));
  const sources = regions.flatMap((r, i) => (s.extraSources[i] && r.subtasks.length > 1 ? [r.subtasks[0]!, r.subtasks[1]!] : [r.subtasks[0]!]));
  const all = regions.flatMap((r) => r.subtasks);
  const regionOf = new Map(regions.flatMap((r) => r.subtasks.map((x) => [x, r.id] as const)));
  const regionSubtasks = new Map(regions.map((r) => [r.id, r.subtasks] as const));
  const c = new CheckpointCoordinator({ config: { jobId: 'prop', ...s.config }, topology: { regions, sources } });
  const run: Run = {
    log: [],
    acks: [],
    failures: [],
    finishedAt: new Map(),
    coordinator: c,
    regionOf,
    regionSubtasks,
    counterMismatches: [],
    config: s.config,
  };
  // What a coordinator rebuilt now would restore: the newest entry's counters.
  let newest: { id: number; counters: Record<string, number> } | undefined;
  let now = 0;
  let seq = 0;
  const outstanding: { subtask: string; id: number }[] = [];
  const down = new Set<string>();
  const record = (effects: readonly CheckpointEffect[]) => {
    for (const e of effects) {
      run.log.push(e);
      if (e.type === 'triggerSources') {
        const triggered = new Set(e.subtasks.map((x) => regionOf.get(x)!));
        for (const r of regions) {
          if (!triggered.has(r.id)) continue;
          for (const x of r.subtasks) if (!run.finishedAt.has(x)) outstanding.push({ subtask: x, id: e.checkpointId });
        }
      }
      if (e.type === 'checkpointFinalized' && e.history.consecutiveFailures && (newest === undefined || e.checkpointId > newest.id)) {
        newest = { id: e.checkpointId, counters: e.history.consecutiveFailures };
      }
    }
    for (const r of regions) {
      const expected = newest?.counters[r.id] ?? 0;
      if (c.consecutiveFailures(r.id) !== expected) run.counterMismatches.push(`log ${run.log.length}: ${r.id} is ${c.consecutiveFailures(r.id)}, newest entry says ${expected}`);
    }
  };
  const take = (pick: number) => (outstanding.length === 0 ? undefined : outstanding.splice(pick % outstanding.length, 1)[0]!);
  for (const cmd of s.commands) {
    switch (cmd.k) {
      case 'trigger':
        record(c.trigger(now));
        break;
      case 'ack': {
        const r = take(cmd.pick);
        if (!r) break;
        const state = [{ key: `${r.subtask}@${r.id}@${seq++}`, bytes: 1 + (seq % 7) }];
        run.acks.push({ subtask: r.subtask, id: r.id, state, at: run.log.length });
        record(c.acknowledge(r.subtask, r.id, state, now));
        break;
      }
      case 'decline': {
        const r = take(cmd.pick);
        if (r) record(c.decline(r.subtask, r.id, 'random decline', now));
        break;
      }
      case 'fail': {
        const x = all[cmd.pick % all.length]!;
        if (run.finishedAt.has(x)) break;
        down.add(x);
        run.failures.push({ at: run.log.length, subtask: x });
        record(c.taskFailed(x, now));
        break;
      }
      case 'recover': {
        const d = [...down];
        if (d.length === 0) break;
        const x = d[cmd.pick % d.length]!;
        down.delete(x);
        record(c.taskRecovered(x, now));
        break;
      }
      case 'finish': {
        const x = all[cmd.pick % all.length]!;
        if (run.finishedAt.has(x) || down.has(x)) break;
        run.finishedAt.set(x, run.log.length);
        for (let i = outstanding.length - 1; i >= 0; i--) if (outstanding[i]!.subtask === x) outstanding.splice(i, 1);
        record(c.subtaskFinished(x, now));
        break;
      }
      case 'advance':
        now += cmd.ms;
        record(c.tick(now));
        break;
    }
  }
  // Let everything time out, then deliver what is still outstanding (late).
  for (let i = 0; i < 20 && (c.pendingCheckpoints().length > 0 || c.queuedTriggers() > 0); i++) {
    now += s.config.timeoutMs;
    record(c.tick(now));
  }
  for (const r of outstanding) {
    const state = [{ key: `${r.subtask}@${r.id}@${seq++}`, bytes: 1 }];
    run.acks.push({ subtask: r.subtask, id: r.id, state, at: run.log.length });
    record(c.acknowledge(r.subtask, r.id, state, now));
  }
  return run;
}

function check(run: Run): void {
  const { log, acks, coordinator: c, config } = run;
  expect(c.pendingCheckpoints()).toEqual([]);
  expect(c.queuedTriggers()).toBe(0);

  const finalizedAt = new Map<number, number>();
  const manifests = new Map<number, CheckpointManifest>();
  const histories: CheckpointHistoryEntry[] = [];
  const failedWhole = new Set<number>();
  log.forEach((e, i) => {
    if (e.type !== 'checkpointFinalized') return;
    // Every checkpoint is finalized exactly once.
    expect(finalizedAt.has(e.checkpointId)).toBe(false);
    finalizedAt.set(e.checkpointId, i);
    histories.push(e.history);
    if (e.outcome === 'completed') manifests.set(e.checkpointId, e.manifest);
    else failedWhole.add(e.checkpointId);
  });
  const triggered = c.stats.counters.triggered;
  expect([...finalizedAt.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: triggered }, (_, i) => i + 1));
  // Trigger ids increase.
  const triggerIds = log.filter((e) => e.type === 'triggerSources').map((e) => (e as { checkpointId: number }).checkpointId);
  expect(triggerIds).toEqual([...triggerIds].sort((a, b) => a - b));

  const ackBy = new Map<string, Ack>(acks.map((a) => [`${a.subtask}@${a.id}`, a]));
  const ordered = [...manifests.values()].sort((a, b) => a.checkpointId - b.checkpointId);

  // (1) A region's restore point is a checkpoint every subtask of it acknowledged (or had finished at).
  const lastRestore = new Map<string, number>();
  for (const m of ordered) {
    expect(m.regions.map((r) => r.regionId)).toEqual([...run.regionSubtasks.keys()]);
    for (const entry of m.regions) {
      const members = run.regionSubtasks.get(entry.regionId)!;
      if (entry.restoreFrom === null) {
        expect(entry.subtasks).toEqual([]);
        continue;
      }
      const cp = entry.restoreFrom;
      expect(cp).toBeLessThanOrEqual(m.checkpointId);
      expect(manifests.get(cp)?.regions.find((r) => r.regionId === entry.regionId)?.restoreFrom).toBe(cp);
      expect([...entry.subtasks.map((x) => x.subtask), ...entry.finished].sort()).toEqual([...members].sort());
      for (const x of entry.subtasks) {
        const ack = ackBy.get(`${x.subtask}@${cp}`);
        expect(ack, `${x.subtask} acknowledged ${cp}`).toBeDefined();
        expect(x.state).toEqual(ack!.state);
        expect(ack!.at).toBeLessThanOrEqual(finalizedAt.get(cp)!);
      }
      for (const f of entry.finished) expect(run.finishedAt.get(f)!).toBeLessThanOrEqual(finalizedAt.get(cp)!);
      // Restore points never go back.
      expect(cp).toBeGreaterThanOrEqual(lastRestore.get(entry.regionId) ?? 0);
      lastRestore.set(entry.regionId, cp);
    }
    // (4) The global handle never yields a partial manifest.
    if (config.handle === 'global') for (const entry of m.regions) expect(entry.restoreFrom).toBe(m.checkpointId);
  }

  // (2)+(3) Notifies: only after N's manifest, only to regions that completed N, only to subtasks that
  // acknowledged N, at most once, never for a checkpoint that failed as a whole.
  const notified = new Set<string>();
  log.forEach((e, i) => {
    if (e.type !== 'notifyComplete') return;
    expect(failedWhole.has(e.checkpointId)).toBe(false);
    const m = manifests.get(e.checkpointId);
    expect(m).toBeDefined();
    expect(finalizedAt.get(e.checkpointId)!).toBeLessThan(i);
    expect(m!.regions.find((r) => r.regionId === e.regionId)!.restoreFrom).toBe(e.checkpointId);
    for (const x of e.subtasks) {
      expect(run.regionOf.get(x)).toBe(e.regionId);
      expect(ackBy.has(`${x}@${e.checkpointId}`)).toBe(true);
    }
    const k = `${e.checkpointId}/${e.regionId}`;
    expect(notified.has(k)).toBe(false);
    notified.add(k);
  });
  // ... and every region that completed N with snapshots is notified.
  for (const m of ordered) {
    for (const entry of m.regions) {
      if (entry.restoreFrom === m.checkpointId && entry.subtasks.length > 0) expect(notified.has(`${m.checkpointId}/${entry.regionId}`)).toBe(true);
    }
  }

  // (5) Limits, replayed in checkpoint id order.
  const consecutive = new Map<string, number>();
  for (const h of [...histories].sort((a, b) => a.checkpointId - b.checkpointId)) {
    const failedIds = h.failedRegions.map((f) => f.regionId);
    const maxFailed = config.handle === 'global' ? 0 : Math.floor(config.maxFailedRegionRatio * h.regions.participating + 1e-9);
    if (h.outcome.status === 'completed') {
      const m = manifests.get(h.checkpointId)!;
      // The failed regions are exactly the regions that did not move to N.
      expect(m.regions.filter((r) => r.restoreFrom !== h.checkpointId).map((r) => r.regionId).sort()).toEqual([...failedIds].sort());
      expect(failedIds.length).toBeLessThanOrEqual(maxFailed);
      for (const r of failedIds) expect((consecutive.get(r) ?? 0) + 1).toBeLessThan(config.maxConsecutiveRegionFailures);
    } else if (h.outcome.reason === 'too-many-failed-regions') {
      expect(failedIds.length).toBeGreaterThan(maxFailed);
    } else if (h.outcome.reason === 'too-many-consecutive-failures') {
      expect(config.handle).toBe('regional');
      expect(failedIds.some((r) => (consecutive.get(r) ?? 0) + 1 >= config.maxConsecutiveRegionFailures)).toBe(true);
    } else {
      expect(config.handle).toBe('global');
    }
    for (const r of failedIds) consecutive.set(r, (consecutive.get(r) ?? 0) + 1);
    if (h.outcome.status === 'completed') {
      for (const entry of manifests.get(h.checkpointId)!.regions) if (entry.restoreFrom === h.checkpointId) consecutive.set(entry.regionId, 0);
    }
  }
  for (const [r, n] of consecutive) expect(c.consecutiveFailures(r)).toBe(n);
  // After every call, the newest history entry with counters holds the live counters.
  expect(run.counterMismatches).toEqual([]);

  // (6) Discarded keys are exactly the snapshots not kept (failed regions of N, N failed as a whole,
  // late), and never a key a manifest references.
  const kept = new Set<string>();
  const referenced = new Set<string>();
  for (const m of ordered) {
    for (const entry of m.regions) {
      for (const x of entry.subtasks) {
        for (const h of x.state) {
          referenced.add(h.key);
          if (entry.restoreFrom === m.checkpointId) kept.add(h.key);
        }
      }
    }
  }
  const discarded = new Set(log.flatMap((e) => (e.type === 'discardSnapshots' ? e.keys : [])));
  const written = new Set(acks.flatMap((a) => a.state.map((h) => h.key)));
  for (const k of referenced) expect(kept.has(k)).toBe(true);
  for (const k of discarded) expect(kept.has(k), `discarded ${k} is kept`).toBe(false);
  expect([...discarded].sort()).toEqual([...written].filter((k) => !kept.has(k)).sort());

  // Retired keys are kept keys that no retained manifest references, and all of them are retired.
  const retired = new Set(log.flatMap((e) => (e.type === 'retireCheckpoints' ? e.keys : [])));
  const stillReferenced = new Set(c.store.all().flatMap((m) => m.regions.flatMap((r) => r.subtasks.flatMap((x) => x.state.map((h) => h.key)))));
  expect([...retired].sort()).toEqual([...kept].filter((k) => !stillReferenced.has(k)).sort());
  const retiredIds = log.flatMap((e) => (e.type === 'retireCheckpoints' ? e.checkpointIds : []));
  expect([...retiredIds, ...c.store.all().map((m) => m.checkpointId)].sort((a, b) => a - b)).toEqual(ordered.map((m) => m.checkpointId));

  // (7) A region with a task failure never completes a checkpoint that was pending at the failure.
  for (const f of run.failures) {
    const region = run.regionOf.get(f.subtask)!;
    for (const m of ordered) {
      const trig = log.findIndex((e) => (e.type === 'triggerSources' || e.type === 'checkpointFinalized') && e.checkpointId === m.checkpointId);
      if (trig < f.at && finalizedAt.get(m.checkpointId)! > f.at) {
        expect(m.regions.find((r) => r.regionId === region)!.restoreFrom).not.toBe(m.checkpointId);
      }
    }
  }

  // Stats agree with the log.
  expect(c.stats.counters.completed).toBe(manifests.size);
  expect(c.stats.counters.failed).toBe(failedWhole.size);
}

describe('CheckpointCoordinator properties', () => {
  it('holds its invariants over random topologies and event orders', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        check(simulate(s));
      }),
      { numRuns: 600 },
    );
  });

  it('with limits that cannot trip, the regional handle never fails a checkpoint as a whole', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const run = simulate({ ...s, config: { ...s.config, handle: 'regional', maxFailedRegionRatio: 1, maxConsecutiveRegionFailures: 1_000_000 } });
        check(run);
        expect(run.coordinator.stats.counters.failed).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('with the global handle, a checkpoint completes only when every region completed it', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const run = simulate({ ...s, config: { ...s.config, handle: 'global' } });
        check(run);
        for (const e of run.log) {
          if (e.type === 'checkpointFinalized' && e.outcome === 'completed') expect(e.history.failedRegions).toEqual([]);
          if (e.type === 'checkpointFinalized' && e.history.failedRegions.length > 0) expect(e.outcome).toBe('failed');
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('the scenario generator', () => {
  it('reaches every outcome the properties are about', () => {
    const seen = new Map<string, number>();
    const bump = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
    for (const s of fc.sample(scenarioArb, { numRuns: 400, seed: 42 })) {
      const run = simulate(s);
      for (const e of run.log) {
        if (e.type === 'checkpointFinalized') {
          if (e.outcome === 'completed') {
            bump('completed');
            if (e.manifest.regions.some((r) => r.restoreFrom !== e.checkpointId && r.restoreFrom !== null)) bump('fallback-to-earlier');
            if (e.manifest.regions.some((r) => r.restoreFrom === null)) bump('fallback-to-none');
            if (e.manifest.regions.some((r) => r.finished.length > 0)) bump('finished-in-manifest');
          } else bump(`failed:${e.failure.reason}`);
          for (const f of e.history.failedRegions) bump(`region:${f.reason}`);
        } else bump(e.type);
      }
    }
    if (process.env.SHOW_COVERAGE) console.log(Object.fromEntries([...seen].sort()));
    for (const k of [
      'completed',
      'fallback-to-earlier',
      'fallback-to-none',
      'finished-in-manifest',
      'failed:declined',
      'failed:timeout',
      'failed:task-failed',
      'failed:unavailable',
      'failed:too-many-failed-regions',
      'failed:too-many-consecutive-failures',
      'region:declined',
      'region:timeout',
      'region:task-failed',
      'region:unavailable',
      'notifyComplete',
      'discardSnapshots',
      'retireCheckpoints',
      'triggerQueued',
      'triggerRefused',
      'abortCheckpoint',
    ]) {
      expect(seen.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });
});
