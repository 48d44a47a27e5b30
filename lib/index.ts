/**
 * `sluice`: the job API. What a jobs module imports to define jobs: the builder, the function
 * interfaces, the connectors, the registry. The construct is `sluice/cdk` (infra/cdk.ts).
 */
export { JobBuilder, DataStream, KeyedStream, ConnectedKeyedStreams, type OperatorOptions } from './api/job';
export type {
  Json,
  RuntimeContext,
  SourceBatch,
  SourceFunction,
  KeyedValueState,
  KeyedProcessContext,
  KeyedProcessFunction,
  SinkFunction,
} from './api/functions';
export { unionStateOf } from './api/functions';
export { UnionListState } from './api/union-list-state';
export { JobRegistry, resolveParams, type JobDefinition, type JobParams, type JobProblem, type ParamSpec } from './api/registry';
export { loadJobRegistry, registryFromModule, JOBS_MODULE_ENV } from './api/jobs-module';
export { JobSpecError, MAX_PARALLELISM, type JobGraph } from './graph/job-graph';
export { GeneratorSource, evenShare, type GeneratorOptions } from './connectors/generator-source';
export { S3LineSource, type S3LineSourceOptions } from './connectors/s3-line-source';
export { S3PartitionedSink, hourPartition, type S3PartitionedSinkOptions } from './connectors/s3-partitioned-sink';
export { METRIC_NAMESPACE, Metrics, Dimension, type MetricSpec, type MetricName } from './observability/metric-names';
