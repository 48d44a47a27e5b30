/**
 * Where the demo's CPU goes: runs `npm run demo` (the same entry, the same flags) as a child and
 * samples /proc every 100 ms for every process under it, keeping each process's own CPU time
 * (utime + stime; children are not counted into parents). Prints the split between the emulator
 * (the moto processes), the task units (their child processes, warm spares included) and the demo
 * process itself (submission, supervisor, checkpoint driver, progress, output check), for the job
 * (until the demo prints its FINISHED line) and for the whole run.
 *
 *   npm run bench:demo-cpu -- [--out bench/results/demo-cpu.json] [-- demo flags, e.g. --records 2000000]
 *
 * Linux only (/proc). CPU a process spends in its last sampling interval before it exits is not
 * seen (at most 100 ms per process); the counts are a lower bound for short-lived processes.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable, round } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TICK_S = 0.01; // USER_HZ: 100 ticks per second on Linux

type Role = 'emulator' | 'units' | 'demo' | 'other';

interface ProcSample {
  ppid: number;
  ticks: number;
  role: Role;
}

const split = process.argv.indexOf('--');
const own = split >= 0 ? process.argv.slice(2, split) : process.argv.slice(2);
const demoArgs = split >= 0 ? process.argv.slice(split + 1) : [];
if (own.includes('--help')) {
  console.log('usage: npm run bench:demo-cpu -- [--out FILE] [-- demo flags]');
  process.exit(0);
}
const outIndex = own.indexOf('--out');
const out = outIndex >= 0 ? own[outIndex + 1]! : join(root, 'bench', 'results', 'demo-cpu.json');
if (!existsProc()) throw new Error('bench:demo-cpu reads /proc: it runs on Linux only');

function existsProc(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

/** ppid and own CPU ticks of a process, from /proc/<pid>/stat (the command may hold spaces and parentheses). */
function stat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // gone between the listing and the read
  }
}

function roleOf(pid: number, demoPid: number): Role {
  if (pid === demoPid) return 'demo';
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return 'other';
  }
  if (/python/.test(cmdline) && /moto|SERVER_SCRIPT|sqs_models/.test(cmdline)) return 'emulator';
  if (/task-unit/.test(cmdline)) return 'units';
  return 'other';
}

const seen = new Map<number, ProcSample>();

function sample(demoPid: number): void {
  const pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) stats.set(pid, s);
  }
  const under = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
      if (p === demoPid) return true;
      const s = stats.get(p) ?? seen.get(p);
      if (!s) return false;
      p = s.ppid;
    }
    return false;
  };
  for (const [pid, s] of stats) {
    if (!under(pid)) continue;
    const known = seen.get(pid);
    // A pid reused by another process would show fewer ticks: keep the larger count (rare, small).
    // 'other' is asked again: a child seen between its fork and its exec still shows its parent's command.
    const role = known && known.role !== 'other' ? known.role : roleOf(pid, demoPid);
    seen.set(pid, { ppid: s.ppid, ticks: Math.max(known?.ticks ?? 0, s.ticks), role });
  }
}

function totals(): Record<Role, number> {
  const t: Record<Role, number> = { emulator: 0, units: 0, demo: 0, other: 0 };
  for (const s of seen.values()) t[s.role] += s.ticks * TICK_S;
  return t;
}

const started = Date.now();
const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bin', 'demo.ts'), ...demoArgs], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const demoPid = child.pid!;
let jobTotals: Record<Role, number> | undefined;
let jobSeconds: number | undefined;
const lines: string[] = [];
let pending = '';
child.stdout!.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  pending += chunk.toString('utf8');
  const parts = pending.split('\n');
  pending = parts.pop()!;
  for (const line of parts) {
    lines.push(line);
    if (!jobTotals && /^job \S+ (FINISHED|FAILED|CANCELLED)/.test(line)) {
      sample(demoPid);
      jobTotals = totals();
      jobSeconds = (Date.now() - started) / 1000;
    }
  }
});
const timer = setInterval(() => sample(demoPid), 100);
const code: number = await new Promise((r) => child.on('exit', (c) => r(c ?? 1)));
clearInterval(timer);
const runTotals = totals();
const runSeconds = (Date.now() - started) / 1000;

const share = (t: Record<Role, number>) => {
  const all = t.emulator + t.units + t.demo + t.other;
  return { ...Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round(v, 2)])), total: round(all, 2), emulatorShare: round(t.emulator / all, 3) };
};
const rows = (label: string, t: Record<Role, number>, seconds: number) => {
  const all = t.emulator + t.units + t.demo + t.other;
  const pct = (v: number) => `${((100 * v) / all).toFixed(0)} %`;
  return [label, `${seconds.toFixed(1)} s`, `${t.emulator.toFixed(1)} s (${pct(t.emulator)})`, `${t.units.toFixed(1)} s (${pct(t.units)})`, `${t.demo.toFixed(1)} s (${pct(t.demo)})`, `${t.other.toFixed(1)} s`, `${all.toFixed(1)} s`];
};
const machine = machineInfo();
const throughput = lines.find((l) => /throughput/.test(l))?.trim();
const check = lines.find((l) => /output check/.test(l))?.trim();
console.log('');
console.log(markdownTable(
  ['window', 'wall', 'emulator CPU', 'task units CPU', 'demo process CPU', 'other', 'all'],
  [...(jobTotals ? [rows('job (to FINISHED)', jobTotals, jobSeconds!)] : []), rows('whole run (setup, output check)', runTotals, runSeconds)],
  ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
));
console.log(describeMachine(machine));
const command = `npm run bench:demo-cpu${demoArgs.length ? ` -- -- ${demoArgs.join(' ')}` : ''}`;
console.log(`rerun: ${command}`);
writeResults(out, {
  benchmark: 'demo-cpu',
  generatedAt: new Date().toISOString(),
  command,
  machine,
  demoExitCode: code,
  throughput,
  outputCheck: check,
  ...(jobTotals ? { job: { wallSeconds: round(jobSeconds!, 2), cpuSeconds: share(jobTotals) } } : {}),
  run: { wallSeconds: round(runSeconds, 2), cpuSeconds: share(runTotals) },
  processes: [...seen.entries()].map(([pid, s]) => ({ pid, role: s.role, cpuSeconds: round(s.ticks * TICK_S, 2) })),
});
console.log(`wrote ${out}`);
process.exit(code);
