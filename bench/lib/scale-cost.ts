/**
 * The price table and cost model of bench:scale (issue 12). Pure arithmetic: the coefficients come
 * from what bench/scale.ts measured through the real AWS adapters; this file only prices them and
 * extrapolates them to other parallelisms and record rates.
 */

/** us-east-1 list prices used for every dollar figure (as stated in issue 12's brief). */
export const PRICES = {
  /** SQS FIFO: per request, each 64 KiB chunk of payload billed as one request. */
  sqsPerRequest: 0.5 / 1e6,
  /** DynamoDB on demand: per write request unit (1 KB) and read request unit (4 KB, strongly consistent). */
  dynamodbPerWriteUnit: 1.25 / 1e6,
  dynamodbPerReadUnit: 0.25 / 1e6,
  /** S3 Standard: PUT, COPY, POST, LIST per request; GET, HEAD per request. */
  s3PerWrite: 0.005 / 1000,
  s3PerRead: 0.0004 / 1000,
  /** Fargate (Linux/x86): per vCPU-hour and per GB-hour. */
  fargatePerVcpuHour: 0.04048,
  fargatePerGbHour: 0.004445,
  /** Lambda (x86): per GB-second (= $0.06 per GB-hour), requests aside. */
  lambdaPerGbSecond: 0.0000166667,
  /** Amazon Managed Service for Apache Flink: per KPU-hour (1 vCPU + 4 GB), plus one orchestration KPU per application. */
  flinkPerKpuHour: 0.11,
} as const;

export const PRICE_TABLE: readonly [string, string][] = [
  ['SQS FIFO requests', '$0.50 per million (each 64 KiB of payload is one request)'],
  ['DynamoDB on-demand writes', '$1.25 per million write request units (1 KB)'],
  ['DynamoDB on-demand reads', '$0.25 per million read request units (4 KB, strongly consistent)'],
  ['S3 PUT/COPY/POST/LIST', '$0.005 per 1,000'],
  ['S3 GET/HEAD', '$0.0004 per 1,000'],
  ['Fargate compute', '$0.04048 per vCPU-hour + $0.004445 per GB-hour'],
  ['Lambda compute', '$0.0000166667 per GB-second ($0.06 per GB-hour)'],
  ['Managed Service for Apache Flink', '$0.11 per KPU-hour (1 vCPU + 4 GB), + 1 orchestration KPU per application; storage left out'],
];

/** Billed units by price dimension (a count, or a count per second). */
export interface Billed {
  sqs: number;
  ddbRead: number;
  ddbWrite: number;
  s3Write: number;
  s3Read: number;
}

export const ZERO: Billed = { sqs: 0, ddbRead: 0, ddbWrite: 0, s3Write: 0, s3Read: 0 };

export const add = (a: Billed, b: Billed): Billed => ({ sqs: a.sqs + b.sqs, ddbRead: a.ddbRead + b.ddbRead, ddbWrite: a.ddbWrite + b.ddbWrite, s3Write: a.s3Write + b.s3Write, s3Read: a.s3Read + b.s3Read });
export const scale = (a: Billed, k: number): Billed => ({ sqs: a.sqs * k, ddbRead: a.ddbRead * k, ddbWrite: a.ddbWrite * k, s3Write: a.s3Write * k, s3Read: a.s3Read * k });
export const minus = (a: Billed, b: Billed): Billed => add(a, scale(b, -1));
export const clampZero = (a: Billed): Billed => ({ sqs: Math.max(0, a.sqs), ddbRead: Math.max(0, a.ddbRead), ddbWrite: Math.max(0, a.ddbWrite), s3Write: Math.max(0, a.s3Write), s3Read: Math.max(0, a.s3Read) });

/** Dollars for billed units. */
export function dollars(b: Billed): number {
  return b.sqs * PRICES.sqsPerRequest + b.ddbWrite * PRICES.dynamodbPerWriteUnit + b.ddbRead * PRICES.dynamodbPerReadUnit + b.s3Write * PRICES.s3PerWrite + b.s3Read * PRICES.s3PerRead;
}

/** Dollars per hour for billed units per second. */
export const dollarsPerHour = (perSecond: Billed): number => dollars(perSecond) * 3600;

/** Managed Flink for one application at a parallelism: KPUs and $/hour. */
export function flinkCost(parallelism: number, parallelismPerKpu = 1): { kpus: number; perHour: number } {
  const kpus = Math.ceil(parallelism / parallelismPerKpu) + 1;
  return { kpus, perHour: kpus * PRICES.flinkPerKpuHour };
}

/** Fargate $/hour for tasks of a size. */
export const fargatePerHour = (tasks: number, vcpu: number, gb: number): number => tasks * (vcpu * PRICES.fargatePerVcpuHour + gb * PRICES.fargatePerGbHour);

/** Lambda $/hour for functions of a memory size running all the time. */
export const lambdaPerHour = (functions: number, gb: number): number => functions * gb * 3600 * PRICES.lambdaPerGbSecond;

/**
 * Task units of the recommendation join (3 tasks of P subtasks): its pipelines (events, features,
 * the join) are placed one after another (lib/graph/placement.ts), so its sources fill the first
 * 2P / subtasksPerUnit units and its joins the rest.
 */
export function joinUnits(parallelism: number, subtasksPerUnit: number): number {
  return Math.ceil((3 * parallelism) / subtasksPerUnit);
}

/** The join's units that send over its all-to-all edges (its sources) and that receive (its joins). */
export function joinUnitRoles(parallelism: number, subtasksPerUnit: number): { producers: number; consumers: number } {
  return { producers: Math.ceil((2 * parallelism) / subtasksPerUnit), consumers: Math.ceil(parallelism / subtasksPerUnit) };
}

/**
 * Data messages per second of an all-to-all edge from `producers` units to `consumers` units at
 * `recordsPerSecond`: each producer unit flushes every linger; in one linger it has
 * n = R x linger / producers records, hashed uniformly over the consumer units, so it sends to
 * C x (1 - (1 - 1/C)^n) of them (one multiplexed message each), and a message is split when it
 * outgrows `maxMessageBytes`.
 */
export function allToAllMessagesPerSecond(producers: number, consumers: number, recordsPerSecond: number, options: { lingerMs: number; bytesPerRecord: number; maxMessageBytes: number }): number {
  if (recordsPerSecond <= 0 || producers <= 0 || consumers <= 0) return 0;
  const linger = options.lingerMs / 1000;
  const n = (recordsPerSecond * linger) / producers;
  const reached = consumers * (1 - Math.pow(1 - 1 / consumers, n));
  const perPair = n / Math.max(reached, 1e-12);
  const split = Math.max(1, Math.ceil((perPair * options.bytesPerRecord) / options.maxMessageBytes));
  return (producers * reached * split) / linger;
}

/** What the model is fitted to (every figure measured by bench:scale). */
export interface Coefficients {
  /** Billed units per second per task unit of an idle job (data plane: polls, liveness heartbeats). */
  idlePerUnit: Billed;
  /** Extra billed units per second per unit of a job with records flowing, beyond its data messages (heartbeat reports, sink staging). */
  loadPerUnit: Billed;
  /** The control plane, per job: a supervision pass every `supervisorEveryS` (the cloud's schedule). */
  controlPlanePerS: Billed;
  /** SQS requests billed per data message: its send, its share of receives and deletes. */
  sqsPerMessage: number;
  /** Payload bytes per record on the wire. */
  bytesPerRecord: number;
  /** Billed units of one checkpoint, per subtask (snapshots, acknowledgements) and per unit (barriers, control, markers). */
  checkpointPerSubtask: Billed;
  checkpointPerUnit: Billed;
  /** CPU seconds per record (all tasks of the job, in the unit processes). */
  cpuSecondsPerRecord: number;
  lingerMs: number;
  maxMessageBytes: number;
}

export interface ModelInput {
  parallelism: number;
  recordsPerSecond: number;
  subtasksPerUnit: number;
  checkpointIntervalS: number;
  /** Fargate task size per unit; compute grows past units x vCPU when the records need more. */
  unitVcpu: number;
  unitGb: number;
  parallelismPerKpu: number;
}

export interface ModelRow {
  parallelism: number;
  recordsPerSecond: number;
  units: number;
  messagesPerSecond: number;
  /** Billed units per second by dimension. */
  billedPerSecond: Billed;
  requestsPerHour: number;
  requestDollarsPerHour: number;
  computeVcpu: number;
  computeDollarsPerHour: number;
  totalDollarsPerHour: number;
  flinkKpus: number;
  flinkDollarsPerHour: number;
  requestDollarsPerMillionRecords: number;
  flinkDollarsPerMillionRecords: number;
}

/** The recommendation join priced at a parallelism and record rate from the coefficients. */
export function modelRow(c: Coefficients, m: ModelInput): ModelRow {
  const units = joinUnits(m.parallelism, m.subtasksPerUnit);
  const subtasks = 3 * m.parallelism;
  const { producers, consumers } = joinUnitRoles(m.parallelism, m.subtasksPerUnit);
  const messages = allToAllMessagesPerSecond(producers, consumers, m.recordsPerSecond, c);
  // Each message is billed per 64 KiB chunk on send and on receive: chunks beyond the first.
  const payloadChunks = (m.recordsPerSecond * c.bytesPerRecord) / 65536;
  const sqsData = messages * c.sqsPerMessage + 2 * Math.max(0, payloadChunks - messages);
  const checkpoint = scale(add(scale(c.checkpointPerSubtask, subtasks), scale(c.checkpointPerUnit, units)), m.checkpointIntervalS > 0 ? 1 / m.checkpointIntervalS : 0);
  const billed = add(
    add(scale(c.idlePerUnit, units), c.controlPlanePerS),
    add(m.recordsPerSecond > 0 ? scale(c.loadPerUnit, units) : ZERO, add({ ...ZERO, sqs: sqsData }, checkpoint)),
  );
  const requestDollarsPerHour = dollarsPerHour(billed);
  const computeVcpu = Math.max(units * m.unitVcpu, m.recordsPerSecond * c.cpuSecondsPerRecord);
  const computeDollarsPerHour = computeVcpu * PRICES.fargatePerVcpuHour + computeVcpu * (m.unitGb / m.unitVcpu) * PRICES.fargatePerGbHour;
  const flink = flinkCost(m.parallelism, m.parallelismPerKpu);
  const millionsPerHour = (m.recordsPerSecond * 3600) / 1e6;
  return {
    parallelism: m.parallelism,
    recordsPerSecond: m.recordsPerSecond,
    units,
    messagesPerSecond: messages,
    billedPerSecond: billed,
    requestsPerHour: (billed.sqs + billed.ddbRead + billed.ddbWrite + billed.s3Read + billed.s3Write) * 3600,
    requestDollarsPerHour,
    computeVcpu,
    computeDollarsPerHour,
    totalDollarsPerHour: requestDollarsPerHour + computeDollarsPerHour,
    flinkKpus: flink.kpus,
    flinkDollarsPerHour: flink.perHour,
    requestDollarsPerMillionRecords: millionsPerHour > 0 ? requestDollarsPerHour / millionsPerHour : NaN,
    flinkDollarsPerMillionRecords: millionsPerHour > 0 ? flink.perHour / millionsPerHour : NaN,
  };
}
