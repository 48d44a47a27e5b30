/**
 * The Sluice CDK app (cdk.json: `npx tsx infra/app.ts`).
 *
 * Context (cdk deploy -c key=value):
 *   sluice:stackName                 stack name (default SluiceStack)
 *   sluice:queuePrefix               queue name prefix (default sluice)
 *   sluice:checkpointRetentionDays   days checkpoint objects are kept (default 30)
 *   sluice:fargate=true              also define the task unit as a Fargate task (+ VPC, cluster)
 *   sluice:taskImage=<uri>           a pushed task-unit image (else built from infra/docker at deploy)
 *   sluice:launcher=lambda|fargate   how units start (default lambda)
 *   sluice:destroyData=true          delete the table and bucket with the stack (default: retain)
 *   sluice:maxCheckpointSeconds      longest a checkpoint may stay undecided (default 900)
 *   sluice:nag=false                 skip the cdk-nag AwsSolutions checks (default: on)
 *   sluice:observability=false       no CloudWatch dashboard and alarms (default: on)
 *   sluice:apiGatewayCloudWatchRole=true   set the account's API Gateway CloudWatch role (default: off)
 *   sluice:apiLogging=false          no API execution and access logs (for an account without that role)
 */
import { App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SluiceStack, type SluiceStackProps } from './stack';

const truthy = (v: unknown) => v === true || v === 'true' || v === '1';

/** Sluice props from the app's context. */
export function propsFromContext(app: App): NonNullable<SluiceStackProps['sluice']> {
  const ctx = (key: string) => app.node.tryGetContext(`sluice:${key}`) as unknown;
  const props: NonNullable<SluiceStackProps['sluice']> = {};
  if (ctx('queuePrefix') !== undefined) props.queuePrefix = String(ctx('queuePrefix'));
  if (ctx('checkpointRetentionDays') !== undefined) {
    const days = Number(ctx('checkpointRetentionDays'));
    if (!Number.isInteger(days) || days < 1) throw new Error(`sluice:checkpointRetentionDays must be a whole number of days, got '${String(ctx('checkpointRetentionDays'))}'`);
    props.checkpointRetentionDays = days;
  }
  if (truthy(ctx('fargate')) || ctx('taskImage') !== undefined) props.fargate = ctx('taskImage') !== undefined ? { image: String(ctx('taskImage')) } : {};
  if (ctx('launcher') !== undefined) {
    const launcher = String(ctx('launcher'));
    if (launcher !== 'lambda' && launcher !== 'fargate') throw new Error(`sluice:launcher must be lambda or fargate, got '${launcher}'`);
    props.launcher = launcher;
  }
  if (truthy(ctx('destroyData'))) props.dataRemovalPolicy = RemovalPolicy.DESTROY;
  if (ctx('maxCheckpointSeconds') !== undefined) props.maxCheckpointSeconds = Number(ctx('maxCheckpointSeconds'));
  if (ctx('observability') !== undefined && !truthy(ctx('observability'))) props.observability = false;
  if (truthy(ctx('apiGatewayCloudWatchRole'))) props.apiGatewayCloudWatchRole = true;
  if (ctx('apiLogging') !== undefined && !truthy(ctx('apiLogging'))) props.apiLogging = false;
  return props;
}

/** The app: one SluiceStack, checked by cdk-nag unless sluice:nag=false. */
export function buildApp(app: App = new App()): { app: App; stack: SluiceStack } {
  const stackName = String(app.node.tryGetContext('sluice:stackName') ?? 'SluiceStack');
  const stack = new SluiceStack(app, stackName, {
    sluice: propsFromContext(app),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    description: 'Sluice: stream processing on AWS managed services (single-point recovery, regional checkpoints)',
  });
  if (app.node.tryGetContext('sluice:nag') !== false && app.node.tryGetContext('sluice:nag') !== 'false') {
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  }
  return { app, stack };
}

if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  buildApp().app.synth();
}
