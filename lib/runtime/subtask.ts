/**
 * One running subtask: reads its source or its input gate, pushes records through its operator
 * chain, writes to its record writers, and passes end of input on when every input has ended.
 */
import type { Json, RuntimeContext, SourceFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { ExecutionEdge, ExecutionGraph, TaskVertex } from '../graph/execution-graph';
import { subPartitionQueue, subtaskId } from '../graph/execution-graph';
import { InputGate, type GateEvent } from './input-gate';
import { END_OF_TIME, OperatorChain } from './operator-chain';
import { RecordWriter, type SubPartitionGate } from './record-writer';

export type SubtaskStatus = 'created' | 'running' | 'finished' | 'failed' | 'cancelled';

export interface SubtaskEnvironment {
  jobId: string;
  graph: ExecutionGraph;
  task: TaskVertex;
  index: number;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  gate?: SubPartitionGate;
  /** Records a source reads per poll. */
  sourceBatchSize?: number;
  /** Longest time records wait in a writer buffer before they are sent. */
  lingerMs?: number;
}

export interface SubtaskCounters {
  recordsIn: number;
  recordsOut: number;
  dropped: number;
  duplicates: number;
  fenced: number;
}

export class SubtaskRunner {
  readonly id: string;
  status: SubtaskStatus = 'created';
  error: unknown;
  private readonly writers: RecordWriter[];
  private readonly chain: OperatorChain;
  private readonly source: SourceFunction<Json> | undefined;
  private inputGate: InputGate | undefined;
  private recordsIn = 0;
  private cancelled = false;
  private lastFlush = Date.now();

  constructor(private readonly env: SubtaskEnvironment) {
    const { task, index, graph } = env;
    this.id = subtaskId(task.id, index);
    const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
    this.writers = task.outputs.map(
      (edge) =>
        new RecordWriter({
          edge,
          producerIndex: index,
          consumerParallelism: parallelism.get(edge.to)!,
          attempt: env.attempt,
          queueOf: (consumer) => subPartitionQueue(env.queuePrefix, env.jobId, edge.id, consumer),
          transport: env.channels,
          gate: env.gate,
        }),
    );
    this.chain = new OperatorChain(task, this.writers);
    const head = task.operators[0]!;
    if (head.kind === 'source') this.source = head.source!();
  }

  counters(): SubtaskCounters {
    return {
      recordsIn: this.recordsIn,
      recordsOut: this.chain.recordsOut,
      dropped: this.writers.reduce((n, w) => n + w.dropped.reduce((a, b) => a + b, 0), 0),
      duplicates: this.inputGate?.duplicates ?? 0,
      fenced: this.inputGate?.fenced ?? 0,
    };
  }

  cancel(): void {
    this.cancelled = true;
  }

  async run(): Promise<SubtaskStatus> {
    this.status = 'running';
    try {
      const ctx = this.context();
      await this.chain.open(ctx);
      if (this.source) await this.runSource(ctx);
      else await this.runInputs();
      if (this.cancelled) return (this.status = 'cancelled');
      await this.finish();
      return (this.status = 'finished');
    } catch (error) {
      this.error = error;
      return (this.status = 'failed');
    } finally {
      await this.inputGate?.stop();
      await this.source?.close?.();
    }
  }

  private context(): RuntimeContext {
    const { env } = this;
    return {
      jobId: env.jobId,
      operatorId: env.task.operators[0]!.id,
      subtaskIndex: env.index,
      parallelism: env.task.parallelism,
      attempt: env.attempt,
      blobs: env.blobs,
    };
  }

  private async runSource(ctx: RuntimeContext): Promise<void> {
    const source = this.source!;
    await source.open(ctx);
    const batchSize = this.env.sourceBatchSize ?? 2000;
    while (!this.cancelled) {
      const batch = await source.poll(batchSize);
      for (const record of batch.records) this.chain.push(record);
      this.recordsIn += batch.records.length;
      if (batch.watermark !== undefined) this.chain.advanceWatermark(batch.watermark);
      if (batch.done) return;
      await this.maybeFlush();
    }
  }

  private async runInputs(): Promise<void> {
    const { env } = this;
    const parallelism = new Map(env.graph.tasks.map((t) => [t.id, t.parallelism]));
    let failure: unknown;
    const gate = new InputGate({
      inputs: env.task.inputs,
      consumerIndex: env.index,
      producerParallelism: (taskId) => parallelism.get(taskId)!,
      queueOf: (edge: ExecutionEdge) => subPartitionQueue(env.queuePrefix, env.jobId, edge.id, env.index),
      transport: env.channels,
      onError: (error) => (failure = error),
    });
    this.inputGate = gate;
    gate.start();
    while (!this.cancelled && !gate.allEnded()) {
      const { events, receipts } = await gate.next(500);
      if (failure) throw failure;
      for (const event of events) this.handle(event);
      if (!gate.allEnded()) {
        const watermark = gate.combinedWatermark();
        if (watermark > this.chain.currentWatermark) this.chain.advanceWatermark(watermark);
      }
      // Input is deleted only after what it produced is safely in the next queues.
      if (events.length > 0) await this.flush();
      if (receipts.size > 0) await gate.acknowledge(receipts);
    }
  }

  private handle({ channel, message }: GateEvent): void {
    switch (message.t) {
      case 'd':
        for (const record of message.r) this.chain.push(record, channel.edge.input);
        this.recordsIn += message.r.length;
        if (message.w !== undefined) channel.watermark = message.w;
        return;
      case 'w':
        channel.watermark = message.w;
        return;
      case 'e':
        channel.ended = true;
        return;
      case 'b':
        // Barriers are aligned by the checkpoint layer; without it they carry no work here.
        return;
    }
  }

  /** End of input: fire every timer, commit the sink's output, tell the consumers. */
  private async finish(): Promise<void> {
    this.chain.advanceWatermark(END_OF_TIME);
    const sink = this.chain.sink;
    if (sink) {
      const staged = await sink.prepare(`final-a${this.env.attempt}`);
      await sink.commit(staged);
      await sink.close?.();
    }
    for (const w of this.writers) w.emitEvent({ t: 'e' });
    await this.flush();
  }

  /** Sends full messages at once and partial ones after the linger time. */
  private async maybeFlush(): Promise<void> {
    if (Date.now() - this.lastFlush >= (this.env.lingerMs ?? 200)) return this.flush();
    await Promise.all(this.writers.filter((w) => w.hasSealed()).map((w) => w.flush(false)));
  }

  private async flush(): Promise<void> {
    this.lastFlush = Date.now();
    await Promise.all(this.writers.filter((w) => w.hasPending()).map((w) => w.flush()));
  }
}
