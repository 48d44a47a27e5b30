/**
 * `sluice/cdk`: the Sluice construct and its parts, for your own CDK app.
 *
 *   import { Sluice } from 'sluice/cdk';
 *   new Sluice(stack, 'Sluice', { jobs: 'src/jobs.ts' });
 */
export { Sluice, PREFIXES, type SluiceProps, type SluiceFargateOptions, type SluiceObservabilityOptions } from './sluice-construct';
export { SluiceStack, type SluiceStackProps } from './stack';
export { SluiceStorage } from './constructs/storage';
export { TaskUnitRuntime } from './constructs/task-units';
export { CheckpointCoordinator } from './constructs/coordinator';
export { Supervision } from './constructs/supervision';
export { ControlApi } from './constructs/control-api';
export { SluiceObservability } from './constructs/observability';
export { METRIC_NAMESPACE, Metrics, Dimension, type MetricSpec, type MetricName } from '../lib/observability/metric-names';
