import { spawnSync } from 'node:child_process';
import { ensureMotoInstalled } from '../../lib/local/emulator';

/** Runs a Python snippet in the embedded emulator's virtualenv (moto's own classes, no server) and gives its output. */
export async function runMotoPython(code: string): Promise<string> {
  const { python } = await ensureMotoInstalled();
  const out = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(out.stderr);
  return out.stdout.trim();
}
