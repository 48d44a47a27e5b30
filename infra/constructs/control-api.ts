/**
 * The job API: an API Gateway REST API with IAM (SigV4) authorization on every method, request
 * validation against models generated from the zod schemas, and one Lambda function per route
 * (functions/api/routes.ts), each with only the permissions its route needs.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { z } from 'zod';
import { apiGatewayModel, modelName } from '../../functions/api/models';
import { ROUTES, type RouteName } from '../../functions/api/routes';
import { bodySchemas } from '../../functions/api/schemas';
import { entryPoint } from '../../lib/util/package-root';
import { acknowledge } from '../nag';
import type { CheckpointCoordinator } from './coordinator';
import type { SluiceFunctions } from './functions';
import type { FlatLogicalIds } from './logical-ids';
import { PREFIXES, type SluiceStorage } from './storage';
import type { TaskUnitRuntime } from './task-units';

export interface ControlApiProps {
  storage: SluiceStorage;
  functions: SluiceFunctions;
  taskUnits: TaskUnitRuntime;
  coordinator: CheckpointCoordinator;
  logicalIds: FlatLogicalIds;
  stageName: string;
  /** Create the account's API Gateway CloudWatch role (see SluiceProps.apiGatewayCloudWatchRole). */
  cloudWatchRole: boolean;
  /** Execution and access logs on the stage (see SluiceProps.apiLogging). */
  logging: boolean;
}

export class ControlApi extends Construct {
  readonly api: apigw.RestApi;
  readonly functions: Record<RouteName, nodejs.NodejsFunction>;

  constructor(scope: Construct, id: string, props: ControlApiProps) {
    super(scope, id);
    props.logicalIds.flatten(this);
    // The latest deployment reads its own logical id while it is constructed (its id is that plus a hash of the API).
    props.logicalIds.reserve(this, ['Api', 'Deployment', 'Resource']);
    const { storage, functions, taskUnits, coordinator } = props;

    this.api = this.restApi(functions, props);
    const apiEnv = { ...storage.env, ...taskUnits.launcherEnv, ...coordinator.scheduleEnv };
    const permissions: Record<RouteName, (role: iam.Role) => void> = {
      submitJob: (role) => {
        storage.grantTable(role, 'write');
        storage.grantQueues(role, 'SubmitJob', ['sqs:CreateQueue', 'sqs:GetQueueUrl', 'sqs:SendMessage', 'sqs:DeleteQueue']);
        for (const s of [...taskUnits.launchStatements, ...coordinator.scheduleStatements('SubmitJobSchedules', ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'])]) {
          role.addToPolicy(s);
        }
      },
      listJobs: (role) => storage.grantTable(role, 'read'),
      getJob: (role) => storage.grantTable(role, 'read'),
      cancelJob: (role) => {
        storage.grantTable(role, 'write');
        storage.grantQueues(role, 'CancelJob', ['sqs:GetQueueUrl', 'sqs:SendMessage', 'sqs:DeleteQueue']);
        for (const s of [...taskUnits.stopStatements, ...coordinator.scheduleStatements('CancelJobSchedules', ['scheduler:DeleteSchedule'])]) role.addToPolicy(s);
      },
      triggerCheckpoint: (role) => {
        storage.grantTable(role, 'write');
        storage.grantObjects(role, 'TriggerCheckpoint', [PREFIXES.checkpoints], ['s3:GetObject']);
        storage.grantQueues(role, 'TriggerCheckpoint', ['sqs:GetQueueUrl', 'sqs:SendMessage']);
        role.addToPolicy(coordinator.startStatement());
      },
      listCheckpoints: (role) => storage.grantTable(role, 'read'),
      putSchedule: (role) => {
        storage.grantTable(role, 'write');
        for (const s of coordinator.scheduleStatements('PutScheduleSchedules', ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'])) role.addToPolicy(s);
      },
    };
    const validators = {
      body: new apigw.RequestValidator(this, 'ValidateBody', { restApi: this.api, validateRequestBody: true, validateRequestParameters: true }),
      params: new apigw.RequestValidator(this, 'ValidateParams', { restApi: this.api, validateRequestBody: false, validateRequestParameters: true }),
    };
    const models = this.models();
    const routeFunctions = {} as Record<RouteName, nodejs.NodejsFunction>;
    for (const route of ROUTES) {
      const name = route.name[0]!.toUpperCase() + route.name.slice(1);
      const role = functions.lambdaRole(this, `Api${name}Role`, `Sluice API ${route.method} ${route.resource}`);
      permissions[route.name](role);
      const fn = functions.function(this, `Api${name}`, {
        entry: 'functions/api/index',
        service: 'api',
        handler: route.name,
        timeout: Duration.seconds(29),
        memorySize: 512,
        environment: apiEnv,
        role,
        description: `Sluice API: ${route.method} ${route.resource} (${route.summary})`,
      });
      routeFunctions[route.name] = fn;
      const resource = this.api.root.resourceForPath(route.resource);
      const hasId = route.resource.includes('{id}');
      const method = resource.addMethod(route.method, new apigw.LambdaIntegration(fn, { proxy: true }), {
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: route.body ? validators.body : validators.params,
        ...(hasId ? { requestParameters: { 'method.request.path.id': true } } : {}),
        ...(route.body ? { requestModels: { 'application/json': models[route.name]! } } : {}),
      });
      acknowledge(method, 'AwsSolutions-COG4', 'Every method uses IAM (SigV4) authorization instead of a Cognito user pool: callers are AWS principals (the CLI, other services).');
    }
    this.functions = routeFunctions;
    this.webUi(functions, validators.params);
  }

  /**
   * The web UI behind the same IAM authorization: GET /ui, /ui/{proxy+} (and / redirecting to
   * ui/) served by functions/ui.ts from the files the bundling hook builds beside it.
   */
  private webUi(functions: SluiceFunctions, validator: apigw.RequestValidator): void {
    const build = entryPoint('bin/build-ui');
    const fn = functions.function(this, 'WebUi', {
      entry: 'functions/ui',
      service: 'api',
      handler: 'serveUi',
      timeout: Duration.seconds(10),
      memorySize: 256,
      environment: {},
      description: 'Sluice web UI: its static files, behind the API',
      afterBundling: (_inputDir, outputDir) => [`node ${build.nodeArgs.join(' ')} "${build.file}" --out "${outputDir}/ui"`],
    });
    const integration = new apigw.LambdaIntegration(fn, { proxy: true });
    const why = 'Every method uses IAM (SigV4) authorization instead of a Cognito user pool: callers are AWS principals (the CLI, other services).';
    const ui = this.api.root.resourceForPath('/ui');
    const methods = [
      this.api.root.addMethod('GET', integration, { authorizationType: apigw.AuthorizationType.IAM, requestValidator: validator }),
      ui.addMethod('GET', integration, { authorizationType: apigw.AuthorizationType.IAM, requestValidator: validator }),
      ui.addResource('{proxy+}').addMethod('GET', integration, {
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: validator,
        requestParameters: { 'method.request.path.proxy': true },
      }),
    ];
    for (const m of methods) acknowledge(m, 'AwsSolutions-COG4', why);
  }

  private restApi(functions: SluiceFunctions, props: ControlApiProps): apigw.RestApi {
    const accessLogs = props.logging ? functions.logGroup(this, 'ApiAccessLogs') : undefined;
    const api = new apigw.RestApi(this, 'Api', {
      description: 'Sluice job API',
      endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
      // The account's (per region) API Gateway logging role: one per account, so setting it here
      // would replace one the account already has. Opt-in.
      cloudWatchRole: props.cloudWatchRole,
      ...(props.cloudWatchRole ? { cloudWatchRoleRemovalPolicy: RemovalPolicy.DESTROY } : {}),
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
      deployOptions: {
        stageName: props.stageName,
        loggingLevel: props.logging ? apigw.MethodLoggingLevel.INFO : apigw.MethodLoggingLevel.OFF,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        ...(accessLogs ? { accessLogDestination: new apigw.LogGroupLogDestination(accessLogs), accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields() } : {}),
      },
    });
    const cloudWatchRole = api.node.tryFindChild('CloudWatchRole');
    if (cloudWatchRole) {
      acknowledge(
        cloudWatchRole,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        "API Gateway's account-level CloudWatch role (needed for execution logging) uses the AWS managed push-to-logs policy, as AWS documents.",
      );
    }
    if (!props.logging) {
      const why = 'API logging is turned off (apiLogging: false) because the account has no API Gateway CloudWatch role; method metrics and X-Ray traces stay on.';
      acknowledge(api.deploymentStage, 'AwsSolutions-APIG1', why);
      acknowledge(api.deploymentStage, 'AwsSolutions-APIG6', why);
    }
    // What API Gateway answers itself (a body the model refuses, auth failures, throttling, its own
    // errors) comes as JSON `{ error, field? }`, as the handlers answer. Gateway response templates are
    // not VTL: only variable substitution. Of the error variables only messageString is documented
    // as quoted and escaped ("the quoted value of $context.error.message"); validationErrorString is
    // not, and its text has quotes in it (`["job"]`), so inside a JSON string it could break the
    // body. The validation detail stays in the API's execution log.
    api.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: { 'application/json': '{"error": $context.error.messageString, "field": "body"}' },
    });
    for (const [id, type] of [['Default4xx', apigw.ResponseType.DEFAULT_4XX], ['Default5xx', apigw.ResponseType.DEFAULT_5XX]] as const) {
      api.addGatewayResponse(id, { type, templates: { 'application/json': '{"error": $context.error.messageString}' } });
    }
    acknowledge(api.deploymentStage, 'AwsSolutions-APIG3', 'The API is private to AWS principals by IAM (SigV4) authorization on every method; attach a WAF web ACL to the stage if it is exposed further.');
    return api;
  }

  /** One request model per route with a body, generated from its zod schema (functions/api/models.ts). */
  private models(): Partial<Record<RouteName, apigw.Model>> {
    const models: Partial<Record<RouteName, apigw.Model>> = {};
    for (const route of ROUTES.filter((r) => r.body)) {
      const schema = (bodySchemas as Partial<Record<RouteName, z.ZodType>>)[route.name];
      if (!schema) throw new Error(`route ${route.name} takes a body but functions/api/schemas.ts has no body schema for it`);
      const name = modelName(route.name);
      models[route.name] = this.api.addModel(`${name}Model`, {
        contentType: 'application/json',
        modelName: name,
        // The generated schema is plain draft 4 (`$schema`, not CDK's `schema`), which CDK passes through as is.
        schema: apiGatewayModel(schema, name) as apigw.JsonSchema,
      });
    }
    return models;
  }
}
