/**
 * `sluice`: the job API. What a jobs module imports to define jobs: the builder, the function
 * interfaces, the connectors, the registry. The construct is `sluice/cdk` (infra/cdk.ts).
 */
export { JobBuilder, DataStream, KeyedStream, ConnectedKeyedStreams, ProcessedStream, WindowedStream, type OperatorOptions } from './api/job';
export type {
  Json,
  RuntimeContext,
  SourceBatch,
  SourceFunction,
  KeyedValueState,
  KeyedProcessContext,
  KeyedProcessFunction,
  SinkFunction,
  TimeDomain,
} from './api/functions';
export { encodeKey, decodeKey, KeyError, type Key } from './api/keys';
export { OutputTag } from './api/output-tag';
export {
  valueState,
  listState,
  mapState,
  StateSpecError,
  type ValueState,
  type ListState,
  type MapState,
  type StateTtl,
  type StateOptions,
  type ValueStateDescriptor,
  type ListStateDescriptor,
  type MapStateDescriptor,
} from './api/state';
export {
  tumblingWindows,
  slidingWindows,
  sessionWindows,
  WindowSpecError,
  type TimeWindow,
  type WindowAssigner,
  type AggregateFunction,
  type ProcessWindowFunction,
  type WindowOutput,
} from './api/windows';
export { unionStateOf } from './api/functions';
export { UnionListState } from './api/union-list-state';
export { JobRegistry, resolveParams, defineJob, typedParams, type JobDefinition, type JobParams, type JobProblem, type ParamSpec, type ParamSpecs, type ParamValues } from './api/registry';
export { loadJobRegistry, registryFromModule, JOBS_MODULE_ENV } from './api/jobs-module';
export { JobSpecError, MAX_PARALLELISM, type JobGraph } from './graph/job-graph';
export { GeneratorSource, evenShare, type GeneratorOptions } from './connectors/generator-source';
export { S3LineSource, type S3LineSourceOptions } from './connectors/s3-line-source';
export { S3PartitionedSink, hourPartition, type S3PartitionedSinkOptions } from './connectors/s3-partitioned-sink';
export { KinesisSource, KinesisSourceError, type KinesisSourceOptions, type KinesisRecordMeta } from './connectors/kinesis-source';
export { KinesisSink, KinesisSinkError, type KinesisSinkOptions } from './connectors/kinesis-sink';
export { KafkaSource, KafkaSourceError, type KafkaSourceOptions, type KafkaRecordMeta, type KafkaConnection } from './connectors/kafka-source';
export { METRIC_NAMESPACE, Metrics, Dimension, type MetricSpec, type MetricName } from './observability/metric-names';
