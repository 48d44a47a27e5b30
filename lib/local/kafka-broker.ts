/**
 * A real Apache Kafka broker for tests and benchmarks: one KRaft node (broker and controller) on
 * 127.0.0.1, free ports, a scratch log directory, stopped with the process that started it.
 *
 * Its jars come from Maven Central once (lib/local/kafka/pom.xml, `mvn dependency:copy-dependencies`,
 * about 45 MB) into .sluice/kafka/<version>/libs; Java 17 or later runs it. `npm run kafka:install`
 * fetches them ahead of time (CI does).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './emulator';
import { PACKAGE_ROOT } from '../util/package-root';

export const KAFKA_VERSION = '4.1.1';
const POM = join(PACKAGE_ROOT, 'lib', 'local', 'kafka', 'pom.xml');

export function kafkaLibs(root = PACKAGE_ROOT): { dir: string; libs: string; marker: string } {
  const dir = join(root, '.sluice', 'kafka', KAFKA_VERSION);
  return { dir, libs: join(dir, 'libs'), marker: join(dir, '.complete') };
}

export class KafkaBrokerError extends Error {
  override name = 'KafkaBrokerError';
}

function need(cmd: string, args: string[], what: string): void {
  const res = spawnSync(cmd, args, { encoding: 'utf8' });
  if (res.error || res.status !== 0) throw new KafkaBrokerError(`${what}: '${cmd}' is not available (${res.error?.message ?? res.stderr.trim().split('\n')[0]}); install it (Debian: apt-get install ${cmd === 'mvn' ? 'maven' : 'default-jre-headless'}; Java 17 or later)`);
}

/** Fetches the broker's jars once (a marker says they are complete); concurrent callers wait for one download. */
export async function ensureKafkaInstalled(log: (line: string) => void = () => {}): Promise<string> {
  const paths = kafkaLibs();
  if (existsSync(paths.marker)) return paths.libs;
  mkdirSync(paths.dir, { recursive: true });
  const lock = join(paths.dir, '.lock');
  for (let waited = 0; ; waited += 500) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(paths.marker)) return paths.libs;
      if (waited > 10 * 60_000) throw new KafkaBrokerError(`waited 10 minutes for another Kafka download (remove ${lock} if none runs)`);
      await sleep(500);
    }
  }
  try {
    if (existsSync(paths.marker)) return paths.libs;
    need('mvn', ['-v'], 'downloading the Kafka broker');
    log(`downloading Apache Kafka ${KAFKA_VERSION} (broker jars, Maven Central) into ${paths.libs} ...`);
    rmSync(paths.libs, { recursive: true, force: true });
    const res = spawnSync('mvn', ['-q', '-B', '-f', POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-Dkafka.version=${KAFKA_VERSION}`, `-DoutputDirectory=${paths.libs}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (res.status !== 0) throw new KafkaBrokerError(`mvn could not fetch Kafka ${KAFKA_VERSION}:\n${(res.stdout + res.stderr).trim().split('\n').slice(-10).join('\n')}`);
    if (!readdirSync(paths.libs).some((f) => f.startsWith('kafka_2.13-'))) throw new KafkaBrokerError(`mvn finished but ${paths.libs} holds no kafka_2.13 jar`);
    writeFileSync(paths.marker, new Date().toISOString());
    return paths.libs;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface KafkaBroker {
  /** host:port of the PLAINTEXT listener. */
  bootstrap: string;
  pid: number;
  stop(): Promise<void>;
}

export interface KafkaStartOptions {
  /** Partitions of topics created automatically (default 1). */
  defaultPartitions?: number;
  log?: (line: string) => void;
  startTimeoutMs?: number;
}

export async function startKafka(options: KafkaStartOptions = {}): Promise<KafkaBroker> {
  need('java', ['-version'], 'starting the Kafka broker');
  const libs = await ensureKafkaInstalled(options.log);
  const [port, controllerPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kafka-'));
  const props = join(dir, 'server.properties');
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${join(dir, 'data')}`,
      `num.partitions=${options.defaultPartitions ?? 1}`,
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=true',
    ].join('\n') + '\n',
  );
  const cp = `${libs}/*`;
  const jvm = ['-Xms128m', '-Xmx512m', '-XX:+UseSerialGC', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-cp', cp];
  const clusterId = randomBytes(16).toString('base64url');
  const format = spawnSync('java', [...jvm, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', props], { encoding: 'utf8' });
  if (format.status !== 0) throw new KafkaBrokerError(`formatting the Kafka log directory failed:\n${(format.stdout + format.stderr).trim().split('\n').slice(-8).join('\n')}`);

  // The broker stops when our stdin closes, however this process ends: bash waits on stdin, then kills it.
  const quoted = ['java', ...jvm, 'kafka.Kafka', props].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child: ChildProcess = spawn('bash', ['-c', `${quoted} & J=$!; cat >/dev/null; kill $J 2>/dev/null; wait $J`], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  let exited = false;
  child.on('exit', () => void (exited = true));
  const stop = async () => {
    if (!exited) {
      child.stdin!.end();
      const deadline = Date.now() + 20_000;
      while (!exited && Date.now() < deadline) await sleep(100);
      if (!exited) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const bootstrap = `127.0.0.1:${port}`;
  const { Admin } = await import('@platformatic/kafka');
  const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
  for (;;) {
    if (exited) {
      rmSync(dir, { recursive: true, force: true });
      throw new KafkaBrokerError(`the Kafka broker exited at start:\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    }
    const admin = new Admin({ clientId: 'sluice-kafka-probe', bootstrapBrokers: [bootstrap], retries: 0, timeout: 2_000 });
    try {
      const metadata = await admin.metadata({ topics: [] });
      if (metadata.brokers.size > 0) return { bootstrap, pid: child.pid!, stop };
    } catch {
      // not up yet
    } finally {
      await admin.close().catch(() => undefined);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new KafkaBrokerError(`the Kafka broker did not answer on ${bootstrap} within ${options.startTimeoutMs ?? 90_000} ms:\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    }
    await sleep(250);
  }
}
