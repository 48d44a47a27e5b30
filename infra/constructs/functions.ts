/**
 * How every Sluice Lambda function is built: its own role (writing to nothing but its own log
 * group unless granted more), its own log group, Node.js 22 on arm64, an ESM bundle made by
 * esbuild on this machine (no Docker), X-Ray tracing (active) and Lambda's JSON log format, with
 * Powertools told the function's service and Sluice's metric namespace.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { METRIC_NAMESPACE } from '../../lib/observability/metric-names';
import { BUNDLE_ALIAS_ARGS } from '../../lib/util/bundle-aliases';
import { entryPoint, FROM_SOURCE, PACKAGE_ROOT } from '../../lib/util/package-root';
import { acknowledge, type WildcardReasons } from '../nag';

/** Sluice's own directory: a checkout, or node_modules/sluice. */
export const REPO_ROOT = PACKAGE_ROOT;

const NODE_RUNTIME_REASON =
  'Sluice runs on Node.js 22 everywhere (package.json engines, the local child-process task units, the Fargate image); the functions move to a newer runtime together with the project.';

export interface SluiceFunctionOptions {
  /** The handler's module, relative to the package root, without extension (functions/...). */
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
  /** Shell commands run after esbuild, to put more files into the function's bundle. */
  afterBundling?: (inputDir: string, outputDir: string) => string[];
}

export interface SluiceFunctionsProps {
  logRetention: logs.RetentionDays;
  minify: boolean;
  wildcards: WildcardReasons;
  /** The user's jobs module, bundled into every function (default: the examples). */
  jobs?: string;
}

export class SluiceFunctions {
  /** The jobs module's absolute path, if one was given. */
  readonly jobs: string | undefined;

  constructor(private readonly props: SluiceFunctionsProps) {
    if (props.jobs !== undefined) {
      this.jobs = resolve(props.jobs);
      if (!existsSync(this.jobs)) throw new Error(`Sluice jobs: no jobs module at ${this.jobs} (a path relative to ${process.cwd()}, or absolute)`);
    }
  }

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
      entry: entryPoint(options.entry).file,
      handler: options.handler,
      // In a checkout, this repository; installed, CDK finds the user's project (its lock file) from the working directory.
      ...(FROM_SOURCE ? { projectRoot: REPO_ROOT, depsLockFilePath: join(REPO_ROOT, 'package-lock.json') } : {}),
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
        ...(options.afterBundling
          ? { commandHooks: { beforeBundling: () => [], beforeInstall: () => [], afterBundling: options.afterBundling } }
          : {}),
        // The user's jobs, where lib/api/jobs-module.ts imports them in a bundle; without them that
        // import stays unresolved and unused (the examples are imported instead).
        ...(this.jobs
          ? { define: { SLUICE_BUNDLED_JOBS: 'true' }, esbuildArgs: { ...BUNDLE_ALIAS_ARGS, '--alias:sluice-bundled-jobs': this.jobs } }
          : { externalModules: ['@aws-sdk/*', 'sluice-bundled-jobs'], esbuildArgs: { ...BUNDLE_ALIAS_ARGS } }),
      },
    });
    acknowledge(fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);
    return fn;
  }
}
