/**
 * An exclusive lock between processes on this machine: a file created with O_EXCL holding the
 * holder's pid. A waiter polls; a lock whose holder has died is broken. Used for one-time work
 * that several processes may start at once (installing the emulator, building the unit bundle:
 * test workers start together).
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Holds `lock` while `body` runs; waits for another holder (up to `timeoutMs`), breaks a dead one's. */
export async function withFileLock<T>(lock: string, body: () => T | Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (isStaleLock(lock)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (remove it if no other process is working)`);
      await sleep(100);
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lock, { force: true });
  }
}

function isStaleLock(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (!pid) return Date.now() - statSync(lock).mtimeMs > 5_000; // still being written, or garbage
    process.kill(pid, 0);
    return false;
  } catch (err) {
    // ESRCH: the holder died; ENOENT: released meanwhile (retry at once).
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
}
