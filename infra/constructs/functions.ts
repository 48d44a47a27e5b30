/**
 * How every Sluice Lambda function is built: its own role (writing to nothing but its own log
 * group unless granted more), its own log group, Node.js 22 on arm64, an ESM bundle made by
 * esbuild on this machine (no Docker), X-Ray tracing (active) and Lambda's JSON log format, with
 * Powertools told the function's service and Sluice's metric namespace.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { METRIC_NAMESPACE } from '../../lib/observability/metric-names';
import { acknowledge, type WildcardReasons } from '../nag';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const NODE_RUNTIME_REASON =
  'Sluice runs on Node.js 22 everywhere (package.json engines, the local child-process task units, the Fargate image); the functions move to a newer runtime together with the project.';

export interface SluiceFunctionOptions {
  /** The handler's file, relative to the repository root (functions/...). */
  entry: string;
  handler: string;
  /** The Powertools service name (logs, traces, metrics): task-unit, supervisor, checkpoint-coordinator, api. */
  service: string;
  timeout: Duration;
  memorySize: number;
  environment: Record<string, string>;
  role?: iam.Role;
  description: string;
  /** Retries of a failed asynchronous invocation (Lambda's default: 2). */
  retryAttempts?: number;
}

export interface SluiceFunctionsProps {
  logRetention: logs.RetentionDays;
  minify: boolean;
  wildcards: WildcardReasons;
}

export class SluiceFunctions {
  constructor(private readonly props: SluiceFunctionsProps) {}

  logGroup(scope: Construct, id: string, name?: string): logs.LogGroup {
    return new logs.LogGroup(scope, id, {
      retention: this.props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
      ...(name ? { logGroupName: name } : {}),
    });
  }

  /** A role for a Lambda function, with nothing but writing to its own log group (added in function()). */
  lambdaRole(scope: Construct, id: string, description: string): iam.Role {
    return new iam.Role(scope, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
  }

  function(scope: Construct, id: string, options: SluiceFunctionOptions): nodejs.NodejsFunction {
    const role = options.role ?? this.lambdaRole(scope, `${id}Role`, options.description);
    const logGroup = this.logGroup(scope, `${id}Logs`);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: this.props.wildcards.sid(`${id}Logs`, "Writing log events needs the log group's streams (<log group ARN>:*), created by Lambda at run time; only this function's own log group."),
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const fn = new nodejs.NodejsFunction(scope, id, {
      entry: join(REPO_ROOT, options.entry),
      handler: options.handler,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: options.timeout,
      memorySize: options.memorySize,
      role,
      logGroup,
      environment: { ...options.environment, POWERTOOLS_SERVICE_NAME: options.service, POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE },
      tracing: lambda.Tracing.ACTIVE,
      loggingFormat: lambda.LoggingFormat.JSON,
      description: options.description,
      ...(options.retryAttempts !== undefined ? { retryAttempts: options.retryAttempts } : {}),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        minify: this.props.minify,
        sourceMap: true,
      },
    });
    acknowledge(fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);
    return fn;
  }
}
