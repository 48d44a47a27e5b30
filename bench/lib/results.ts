/**
 * What every benchmark records beside its figures: the machine it ran on, and the JSON file under
 * bench/results/ it writes (the directory made if needed).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGb: number;
  node: string;
  platform: string;
  /** Load average over the last minute when this was read: above `cores`, the run shared the CPU. */
  loadavg1m: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadavg1m: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

/** One line for the console: `machine: <cpu>, <n> cores, <m> GB, <platform>, node <v>, load <l>`. */
export function describeMachine(m: MachineInfo): string {
  return `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.platform}, node ${m.node}, load ${m.loadavg1m}`;
}

/** Writes a benchmark's JSON (pretty, newline-terminated) to `file`, creating its directory. */
export function writeResults(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}
