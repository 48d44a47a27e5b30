/**
 * DynamoDB Local (AWS's own emulator) for a benchmark, started through the project's
 * `localstack/host.sh dynamodb-local <port>` (installed from Maven Central on first use: needs a
 * JDK 17+ and mvn) on a free loopback port, and stopped with the benchmark. bench:scale runs
 * DynamoDB on it with `--dynamodb-local`: at P=4000 moto's one DynamoDB process answered each call
 * in 0.2-5 s beside 12,000 subtasks on two cores, and a restart waits on a few of them
 * (docs/scale.md).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, freePort } from '../../lib/local/emulator';

export interface DynamoDbLocal {
  endpoint: string;
  stop(): Promise<void>;
}

/** Any HTTP answer (DynamoDB Local answers a GET with 400) means it listens. */
async function answers(endpoint: string): Promise<boolean> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts DynamoDB Local and waits until it answers (`timeoutMs`, default 10 min: the first start
 * installs it). Its output goes to `log` line by line; a start that exits or never answers throws
 * with the last of it.
 */
export async function startDynamoDbLocal(options: { timeoutMs?: number; log?: (line: string) => void } = {}): Promise<DynamoDbLocal> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('bash', [join(REPO_ROOT, 'localstack', 'host.sh'), 'dynamodb-local', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const tail: string[] = [];
  const take = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.log?.(line);
    }
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  const stop = async () => {
    if (exited !== undefined) return;
    const gone = new Promise((r) => child.once('exit', r));
    // The script runs java in the foreground: the whole process group goes.
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      return;
    }
    await Promise.race([gone, sleep(10_000)]);
    if (exited === undefined) process.kill(-child.pid!, 'SIGKILL');
  };
  const until = Date.now() + (options.timeoutMs ?? 600_000);
  while (!(await answers(endpoint))) {
    if (exited !== undefined) throw new Error(`DynamoDB Local did not start (localstack/host.sh dynamodb-local ${port} exited ${exited}):\n${tail.join('\n')}`);
    if (Date.now() > until) {
      await stop();
      throw new Error(`DynamoDB Local did not answer on ${endpoint} within ${Math.round((options.timeoutMs ?? 600_000) / 1000)} s:\n${tail.join('\n')}`);
    }
    await sleep(500);
  }
  return { endpoint, stop };
}
