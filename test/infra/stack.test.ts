/**
 * Synthesizes the CDK app (with esbuild bundling of the functions, no Docker) and checks the
 * resources, the state machine, the API, least-privilege IAM and that cdk-nag (AwsSolutions)
 * reports nothing unacknowledged.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack, type CfnElement } from 'aws-cdk-lib';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IConstruct } from 'constructs';
import { buildApp } from '../../infra/app';
import { Sluice } from '../../infra/sluice-construct';
import type { SluiceStack } from '../../infra/stack';
import { ROUTES } from '../../functions/api/routes';
import { bodySchemas } from '../../functions/api/schemas';
import { API_GATEWAY_MODEL_KEYWORDS, apiGatewayModel, modelName } from '../../functions/api/models';
import { METRIC_NAMESPACE, Metrics, type MetricSpec } from '../../lib/observability/metric-names';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function synth(context: Record<string, unknown> = {}) {
  const app = new App({ context });
  const { stack } = buildApp(app);
  const started = Date.now();
  const assembly = app.synth();
  const ms = Date.now() - started;
  const template = Template.fromJSON(assembly.getStackByName(stack.stackName).template);
  const reportFile = join(assembly.directory, 'validation-report.json');
  const report = existsSync(reportFile) ? JSON.parse(readFileSync(reportFile, 'utf8')) : { pluginReports: [] };
  return { app, stack, template, report, ms, directory: assembly.directory };
}

/** Every IAM statement in the template, with the logical id of the policy or role holding it. */
function statements(template: Template): { holder: string; roles: string[]; s: Json }[] {
  const out: { holder: string; roles: string[]; s: Json }[] = [];
  for (const [id, p] of Object.entries<Json>(template.findResources('AWS::IAM::Policy'))) {
    const roles = (p.Properties.Roles ?? []).map((r: Json) => r.Ref);
    for (const s of p.Properties.PolicyDocument.Statement) out.push({ holder: id, roles, s });
  }
  for (const [id, r] of Object.entries<Json>(template.findResources('AWS::IAM::Role'))) {
    for (const p of r.Properties.Policies ?? []) for (const s of p.PolicyDocument.Statement) out.push({ holder: id, roles: [id], s });
  }
  return out;
}

const arr = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** The actions each role may take (all its statements). */
function actionsOf(template: Template, roleId: string): Set<string> {
  return new Set(statements(template).filter((x) => x.roles.includes(roleId)).flatMap((x) => arr<string>(x.s.Action)));
}

function roleOf(template: Template, functionId: string): string {
  return template.findResources('AWS::Lambda::Function')[functionId]!.Properties.Role['Fn::GetAtt'][0];
}

/** Logical id of a construct's CloudFormation resource (the construct's default child). */
function logicalId(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
}

/** A function of the Sluice construct by its construct id (TaskUnit, Supervisor, ApiSubmitJob, ...). */
function sluiceFunction(stack: SluiceStack, name: string): IConstruct {
  const s = stack.sluice;
  if (name === 'TaskUnit') return s.taskUnit;
  if (name === 'Supervisor') return s.supervisor;
  const route = name.replace(/^Api/, '');
  const fn = s.apiFunctions[(route[0]!.toLowerCase() + route.slice(1)) as keyof typeof s.apiFunctions];
  if (!fn) throw new Error(`no Sluice function ${name}`);
  return fn;
}

/** The state machine definition as JSON; CloudFormation tokens become `TOKEN<n>`, resolved by `tokens`. */
function definition(template: Template): { def: Json; tokens: Record<string, Json> } {
  const sm = Object.values<Json>(template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
  const raw = sm.Properties.DefinitionString;
  const tokens: Record<string, Json> = {};
  const text =
    typeof raw === 'string'
      ? raw
      : raw['Fn::Join'][1]
          .map((p: Json, i: number) => {
            if (typeof p === 'string') return p;
            tokens[`TOKEN${i}`] = p;
            return `TOKEN${i}`;
          })
          .join('');
  return { def: JSON.parse(text), tokens };
}

/** The logical id of the one function with this handler. */
function logicalIdOfHandler(template: Template, handler: string): string {
  const found = Object.entries<Json>(template.findResources('AWS::Lambda::Function')).filter(([, f]) => f.Properties.Handler === handler);
  expect(found, handler).toHaveLength(1);
  return found[0]![0];
}

describe('SluiceStack (default: Lambda task units)', () => {
  let s: ReturnType<typeof synth>;
  beforeAll(() => {
    s = synth();
  }, 120_000);

  it('synthesizes with esbuild bundling (no Docker) in reasonable time', () => {
    expect(s.ms).toBeLessThan(60_000);
    const assets = JSON.parse(readFileSync(join(s.directory, `${s.stack.stackName}.assets.json`), 'utf8'));
    const dirs = Object.values<Json>(assets.files).map((f) => f.source.path as string).filter((p) => p.startsWith('asset.'));
    expect(dirs.length).toBeGreaterThanOrEqual(4); // task unit, supervisor, coordinator, API bundles
    for (const d of dirs) expect(existsSync(join(s.directory, d, 'index.mjs')), `${d}/index.mjs`).toBe(true);
    // Without a jobs module of the user's, the example jobs are bundled (loaded on first use), in
    // every function but the web UI's, which serves the files its bundling hook built beside it.
    const ui = dirs.filter((d) => existsSync(join(s.directory, d, 'ui', 'index.html')));
    expect(ui).toHaveLength(1);
    for (const f of ['index.html', 'app.js', 'style.css']) expect(existsSync(join(s.directory, ui[0]!, 'ui', f)), f).toBe(true);
    for (const d of dirs.filter((x) => !ui.includes(x))) {
      const code = readFileSync(join(s.directory, d, 'index.mjs'), 'utf8');
      expect(code.includes('recommendation-join'), `${d} has the example jobs`).toBe(true);
      // The Kafka client's WebAssembly travels inside the bundle (inlined, base64 of "\0asm"): a
      // read of ../dist/native.wasm beside the bundle would fail every start of the function.
      expect(code.includes('native.wasm'), `${d} reads native.wasm`).toBe(false);
      expect(code.includes('AGFzbQ'), `${d} inlines the wasm`).toBe(true);
    }
    expect(assets.dockerImages ?? {}).toEqual({});
  });

  it('has the metadata table: pk/sk strings, on demand, point-in-time recovery', () => {
    s.template.resourceCountIs('AWS::DynamoDB::Table', 1);
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('has a private, encrypted, TLS-only data bucket with lifecycle rules', () => {
    const dataId = logicalId(s.stack, s.stack.sluice.bucket);
    const bucket = s.template.findResources('AWS::S3::Bucket')[dataId]!.Properties;
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.LoggingConfiguration.DestinationBucketName).toBeDefined();
    const rules = bucket.LifecycleConfiguration.Rules;
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Prefix: 'checkpoints/', ExpirationInDays: 30, Status: 'Enabled' }),
        expect.objectContaining({ Prefix: 'staging/', ExpirationInDays: 1, Status: 'Enabled' }),
        expect.objectContaining({ Prefix: 'handover/', ExpirationInDays: 2, Status: 'Enabled' }),
        expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
      ]),
    );
    s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: dataId },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('traces every function with X-Ray and logs it in JSON, with its Powertools service and the Sluice namespace', () => {
    const fns = Object.values<Json>(s.template.findResources('AWS::Lambda::Function')).filter((f) => f.Properties.Runtime?.startsWith('nodejs'));
    expect(fns.length).toBe(1 + 1 + 4 + ROUTES.length + 1); // task unit, supervisor, coordinator steps, API routes, web UI
    for (const f of fns) {
      expect(f.Properties.TracingConfig).toEqual({ Mode: 'Active' });
      expect(f.Properties.LoggingConfig).toMatchObject({ LogFormat: 'JSON' });
      expect(f.Properties.Environment.Variables.POWERTOOLS_METRICS_NAMESPACE).toBe(METRIC_NAMESPACE);
    }
    const services = new Set(fns.map((f) => f.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME));
    expect(services).toEqual(new Set(['task-unit', 'supervisor', 'checkpoint-coordinator', 'api']));
    // Tracing lets each function's role write segments, and no more of X-Ray.
    for (const f of fns) {
      const xray = [...actionsOf(s.template, f.Properties.Role['Fn::GetAtt'][0])].filter((a) => a.startsWith('xray:'));
      expect(xray.sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
    }
  });

  it('has the dashboard over every metric of the shared table, one line per job', () => {
    const dashboards = Object.values<Json>(s.template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    // The body is a Fn::Join of strings and tokens; the SEARCH expressions are plain strings.
    const body = (dashboards[0].Properties.DashboardBody['Fn::Join'][1] as Json[]).map((p) => (typeof p === 'string' ? p : '<token>')).join('');
    for (const spec of Object.values<MetricSpec>(Metrics)) {
      const schema = [METRIC_NAMESPACE, ...spec.dimensions].join(',');
      expect(body, spec.name).toContain(`SEARCH('{${schema}} MetricName=\\"${spec.name}\\"'`);
    }
  });

  it('has the alarms: failed coordinator executions, supervisor errors, task unit errors and throttles, checkpoint age, input lag', () => {
    const alarms = Object.values<Json>(s.template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms).toHaveLength(6);
    const byMetric = (namespace: string, name: string) => alarms.filter((a) => a.Namespace === namespace && a.MetricName === name);
    const smId = Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
    expect(byMetric('AWS/States', 'ExecutionsFailed')).toEqual([expect.objectContaining({ Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: smId } }], Threshold: 1 })]);
    const taskUnitId = logicalId(s.stack, s.stack.sluice.taskUnit);
    const supervisorId = logicalId(s.stack, s.stack.sluice.supervisor);
    expect(byMetric('AWS/Lambda', 'Errors').map((a) => a.Dimensions[0].Value.Ref).sort()).toEqual([supervisorId, taskUnitId].sort());
    expect(byMetric('AWS/Lambda', 'Throttles').map((a) => a.Dimensions[0].Value.Ref)).toEqual([taskUnitId]);
    // Over every job: Metrics Insights queries of the shared table's metrics.
    const insights = alarms.filter((a) => a.Metrics).map((a) => ({ expression: a.Metrics[0].Expression, threshold: a.Threshold, periods: a.EvaluationPeriods }));
    expect(insights).toEqual(
      expect.arrayContaining([
        { expression: `SELECT MAX(${Metrics.CheckpointAge.name}) FROM SCHEMA("${METRIC_NAMESPACE}", job)`, threshold: 30 * 60_000, periods: 1 },
        { expression: `SELECT MAX(${Metrics.InputLag.name}) FROM SCHEMA("${METRIC_NAMESPACE}", job, operator)`, threshold: 5 * 60_000, periods: 5 },
      ]),
    );
    expect(insights).toHaveLength(2);
    for (const a of alarms) expect(a.TreatMissingData).toBe('notBreaching');
  });

  it("leaves the account's API Gateway CloudWatch role alone, and logs the API stage", () => {
    s.template.resourceCountIs('AWS::ApiGateway::Account', 0);
    expect(Object.values<Json>(s.template.findResources('AWS::IAM::Role')).filter((r) => JSON.stringify(r).includes('apigateway.amazonaws.com'))).toEqual([]);
    s.template.hasResourceProperties('AWS::ApiGateway::Stage', { AccessLogSetting: Match.objectLike({ DestinationArn: Match.anyValue() }), MethodSettings: [Match.objectLike({ LoggingLevel: 'INFO' })] });
  });

  it('runs every function on nodejs22.x; the task unit for 15 minutes and may re-invoke itself', () => {
    const fns = s.template.findResources('AWS::Lambda::Function');
    const ours = Object.entries<Json>(fns).filter(([, f]) => f.Properties.Runtime?.startsWith('nodejs'));
    expect(ours.length).toBe(1 + 1 + 4 + ROUTES.length + 1);
    for (const [, f] of ours) expect(f.Properties.Runtime).toBe('nodejs22.x');
    const taskUnitId = logicalId(s.stack, s.stack.sluice.taskUnit);
    expect(fns[taskUnitId]!.Properties).toMatchObject({ Timeout: 900, Handler: 'index.handler' });
    const handlers = ours.map(([, f]) => f.Properties.Handler).sort();
    for (const r of ROUTES) expect(handlers).toContain(`index.${r.name}`);
    for (const h of ['trigger', 'poll', 'finalize', 'notify', 'serveUi']) expect(handlers).toContain(`index.${h}`);
    // A failed event is not retried by Lambda: a rerun would restart the attempt.
    s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: taskUnitId }, MaximumRetryAttempts: 0 });
    const self = statements(s.template).find((x) => x.roles.includes(roleOf(s.template, taskUnitId)) && arr(x.s.Action).includes('lambda:InvokeFunction'));
    expect(self?.s.Resource).toEqual({ 'Fn::GetAtt': [taskUnitId, 'Arn'] });
    // The supervisor runs every minute.
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.sluice.supervisor), 'Arn'] } })],
    });
  });

  it('has the coordinator state machine: Trigger → Wait → Poll → Choice → Finalize → Notify, with timeouts and retries', () => {
    const { def, tokens } = definition(s.template);
    const functions = s.template.findResources('AWS::Lambda::Function');
    expect(def.StartAt).toBe('Trigger');
    expect(def.TimeoutSeconds).toBeGreaterThan(900);
    const states = def.States;
    for (const name of ['Trigger', 'Wait', 'Poll', 'Finalize', 'Notify', 'Decided?']) expect(states, name).toHaveProperty([name]);
    for (const name of ['Trigger', 'Poll', 'Finalize', 'Notify']) {
      const t = states[name];
      expect(t.Type).toBe('Task');
      // Invokes its coordinator function (handler trigger/poll/finalize/notify) directly.
      const target = tokens[t.Resource]['Fn::GetAtt'][0];
      expect(functions[target]!.Properties.Handler).toBe(`index.${name.toLowerCase()}`);
      if (name === 'Trigger') expect(t.Parameters).toBeUndefined(); // the input { jobId, checkpointId? } as is
      else expect(t.Parameters).toEqual({ 'jobId.$': '$.jobId', 'checkpointId.$': '$.checkpointId' });
      expect(t.TimeoutSeconds, `${name} timeout`).toBe(90);
      expect(t.Retry.map((r: Json) => r.ErrorEquals).flat()).toEqual(expect.arrayContaining(['States.Timeout', 'States.TaskFailed', 'Lambda.ServiceException']));
      expect(t.Catch[0]).toMatchObject({ ErrorEquals: ['States.ALL'], Next: 'CoordinatorError' });
    }
    expect(states.Trigger.Next).toBe('Triggered?');
    expect(states['Triggered?'].Default).toBe('Prepare');
    expect(states.Prepare.Next).toBe('Wait');
    // The first wait is the poll interval (2 s); then each poll says how long (a quarter of the checkpoint's age).
    expect(states.Prepare.Parameters).toMatchObject({ waitSeconds: 2 });
    expect(states.Wait).toMatchObject({ Type: 'Wait', SecondsPath: '$.waitSeconds', Next: 'Poll' });
    expect(states.CountPoll.Parameters['waitSeconds.$']).toBe('$.poll.waitSeconds');
    expect(states.Poll.Next).toBe('CountPoll');
    expect(states.CountPoll.Parameters['polls.$']).toBe('States.MathAdd($.polls, 1)');
    const decided = states['Decided?'];
    expect(decided.Type).toBe('Choice');
    expect(decided.Default).toBe('Wait');
    expect(decided.Choices[0].Next).toBe('Finalize');
    expect(JSON.stringify(decided.Choices[0])).toContain('"NumericGreaterThanEquals":450');
    expect(states.Finalize.Next).toBe('Finalized?');
    expect(states.Notify.Next).toBe('CheckpointCompleted');
    s.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
    });
  });

  it('has the job schedule group and a scheduler role that may only start the state machine', () => {
    s.template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
    const smId = Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
    const roleId = logicalId(s.stack, s.stack.sluice.schedulerRole);
    const role = s.template.findResources('AWS::IAM::Role')[roleId]!.Properties;
    expect(role.AssumeRolePolicyDocument.Statement[0]).toMatchObject({
      Principal: { Service: 'scheduler.amazonaws.com' },
      Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
    });
    const granted = statements(s.template).filter((x) => x.roles.includes(roleId));
    expect(granted.map((x) => x.s)).toEqual([expect.objectContaining({ Action: 'states:StartExecution', Resource: { Ref: smId } })]);
    // The API passes that role to Scheduler, for schedules named sluice-* in the group only.
    const submitRole = roleOf(s.template, logicalId(s.stack, s.stack.sluice.apiFunctions.submitJob));
    const pass = statements(s.template).find((x) => x.roles.includes(submitRole) && arr(x.s.Action).includes('iam:PassRole'));
    expect(pass?.s).toMatchObject({ Resource: { 'Fn::GetAtt': [roleId, 'Arn'] }, Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } } });
    const sched = statements(s.template).find((x) => x.roles.includes(submitRole) && arr(x.s.Action).includes('scheduler:CreateSchedule'));
    expect(JSON.stringify(sched?.s.Resource)).toMatch(/:schedule\/.*\/sluice-\*/);
  });

  it('has the REST API: one method per route, IAM auth, Lambda proxy integration, request validation', () => {
    const all = Object.values<Json>(s.template.findResources('AWS::ApiGateway::Method'));
    // The web UI's three GETs (/, /ui, /ui/{proxy+}) go to its own function, behind the same auth.
    const uiFunction = logicalIdOfHandler(s.template, 'index.serveUi');
    const isUi = (m: Json) => JSON.stringify(m.Properties.Integration.Uri).includes(uiFunction);
    expect(all.filter(isUi).map((m) => m.Properties.HttpMethod)).toEqual(['GET', 'GET', 'GET']);
    for (const m of all.filter(isUi)) expect(m.Properties.AuthorizationType).toBe('AWS_IAM');
    const methods = all.filter((m) => !isUi(m));
    expect(methods.length).toBe(ROUTES.length);
    const validators = s.template.findResources('AWS::ApiGateway::RequestValidator');
    expect(Object.keys(validators).length).toBe(2);
    for (const m of methods) {
      expect(m.Properties.AuthorizationType).toBe('AWS_IAM');
      expect(m.Properties.Integration.Type).toBe('AWS_PROXY');
      expect(Object.keys(validators)).toContain(m.Properties.RequestValidatorId.Ref);
    }
    expect(methods.map((m) => m.Properties.HttpMethod).sort()).toEqual(ROUTES.map((r) => r.method).sort());
    const withBody = methods.filter((m) => m.Properties.RequestModels);
    expect(withBody.map((m) => m.Properties.HttpMethod).sort()).toEqual(['POST', 'PUT']);
    s.template.hasResourceProperties('AWS::ApiGateway::Model', {
      Name: 'SubmitJob',
      Schema: Match.objectLike({ required: ['job'], properties: Match.objectLike({ runOn: { type: 'string', enum: ['lambda', 'fargate'] } }) }),
    });
    s.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      AccessLogSetting: Match.objectLike({ DestinationArn: Match.anyValue() }),
      MethodSettings: [Match.objectLike({ LoggingLevel: 'INFO' })],
      TracingEnabled: true,
    });
  });

  it('generates the request models from the zod schemas, in the draft 4 subset API Gateway takes', () => {
    const models = Object.values<Json>(s.template.findResources('AWS::ApiGateway::Model'));
    expect(models.map((m) => m.Properties.Name).sort()).toEqual(Object.keys(bodySchemas).map(modelName).sort());
    for (const [route, schema] of Object.entries(bodySchemas)) {
      const model = models.find((m) => m.Properties.Name === modelName(route))!;
      // Exactly what models.ts generates: CDK's schema mapping changed nothing.
      expect(model.Properties.Schema, route).toEqual(apiGatewayModel(schema, modelName(route)));
      expect(model.Properties.ContentType).toBe('application/json');
      const used = new Set<string>();
      const walk = (node: Json, top: boolean) => {
        for (const [k, v] of Object.entries<Json>(node)) {
          used.add(k);
          if (k === '$schema') expect(top, '$schema only at the top').toBe(true);
          if (k === 'properties') for (const sub of Object.values<Json>(v)) walk(sub, false);
          else if ((k === 'additionalProperties' || k === 'items') && typeof v === 'object') walk(v, false);
        }
      };
      walk(model.Properties.Schema, true);
      expect([...used].filter((k) => !API_GATEWAY_MODEL_KEYWORDS.has(k)), route).toEqual([]);
      expect(model.Properties.Schema.$schema).toBe('http://json-schema.org/draft-04/schema#');
    }
    // The copy that had drifted: zod allows at most a day.
    const submit = models.find((m) => m.Properties.Name === 'SubmitJob')!;
    expect(submit.Properties.Schema.properties.checkpoint.properties.timeoutSeconds).toEqual({ type: 'number', minimum: 0, maximum: 86_400 });
    // Each body route validates against its own model.
    const methods = Object.values<Json>(s.template.findResources('AWS::ApiGateway::Method'));
    const modelIds = Object.fromEntries(Object.entries<Json>(s.template.findResources('AWS::ApiGateway::Model')).map(([id, m]) => [m.Properties.Name, id]));
    for (const route of ROUTES.filter((r) => r.body)) {
      const method = methods.find((m) => m.Properties.HttpMethod === route.method && m.Properties.RequestModels)!;
      expect(method.Properties.RequestModels['application/json'].Ref, route.name).toBe(modelIds[modelName(route.name)]);
    }
  });

  it('answers requests API Gateway refuses itself as JSON { error, field? }, like the handlers', () => {
    const responses = Object.values<Json>(s.template.findResources('AWS::ApiGateway::GatewayResponse'));
    const byType = Object.fromEntries(responses.map((r) => [r.Properties.ResponseType, r.Properties]));
    expect(Object.keys(byType).sort()).toEqual(['BAD_REQUEST_BODY', 'DEFAULT_4XX', 'DEFAULT_5XX']);
    expect(byType.BAD_REQUEST_BODY.StatusCode).toBe('400');
    for (const r of responses) expect(Object.keys(r.Properties.ResponseTemplates)).toEqual(['application/json']);
    // API Gateway substitutes the variables (no VTL): $context.error.messageString comes quoted and
    // escaped, as AWS documents. No other error variable is used: none is documented as escaped.
    for (const r of responses) expect(r.Properties.ResponseTemplates['application/json']).not.toMatch(/\$context\.error\.(?!messageString)/);
    const render = (template: string) => JSON.parse(template.replace(/\$context\.error\.messageString/g, JSON.stringify('Invalid request body: "job" is "quoted"')));
    expect(render(byType.BAD_REQUEST_BODY.ResponseTemplates['application/json'])).toEqual({ error: 'Invalid request body: "job" is "quoted"', field: 'body' });
    for (const type of ['DEFAULT_4XX', 'DEFAULT_5XX']) expect(render(byType[type].ResponseTemplates['application/json'])).toEqual({ error: 'Invalid request body: "job" is "quoted"' });
  });

  it('scopes IAM to the table, the bucket prefixes, the queue prefix, the state machine; no * except documented', () => {
    const tableId = Object.keys(s.template.findResources('AWS::DynamoDB::Table'))[0]!;
    const dataId = logicalId(s.stack, s.stack.sluice.bucket);
    const smId = Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
    const queueArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sqs:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':sluice-*']] };
    const documentedStar = /^(logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups)|xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets)|ecr:GetAuthorizationToken)$/;
    const all = statements(s.template);
    expect(all.length).toBeGreaterThan(20);
    for (const { holder, s: st } of all) {
      const actions = arr<string>(st.Action);
      for (const a of actions) expect(a.includes('*'), `${holder}: action ${a}`).toBe(false);
      const resources = arr<Json>(st.Resource);
      if (resources.includes('*')) for (const a of actions) expect(a, `${holder}: ${a} on *`).toMatch(documentedStar);
      if (actions.some((a) => a.startsWith('dynamodb:'))) expect(resources, holder).toEqual([{ 'Fn::GetAtt': [tableId, 'Arn'] }]);
      if (actions.some((a) => a.startsWith('sqs:'))) expect(resources, holder).toEqual([queueArn]);
      if (actions.includes('states:StartExecution')) expect(resources, holder).toEqual([{ Ref: smId }]);
      if (actions.some((a) => /^s3:(Get|Put|Delete)Object$/.test(a))) {
        for (const r of resources) expect(JSON.stringify(r), holder).toMatch(new RegExp(`"${dataId}","Arn"\\]\\},"/(checkpoints|staging|output|input|handover)/\\*"`));
      }
      if (actions.includes('s3:ListBucket')) expect(st.Condition.StringLike['s3:prefix'].length, holder).toBeGreaterThan(0);
    }
    // Least privilege per function.
    const fn = (name: string) => roleOf(s.template, logicalId(s.stack, sluiceFunction(s.stack, name)));
    const readOnly = ['dynamodb:GetItem', 'dynamodb:Query', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTraceSegments', 'xray:PutTelemetryRecords'];
    for (const name of ['ApiListJobs', 'ApiGetJob', 'ApiListCheckpoints']) expect([...actionsOf(s.template, fn(name))].sort()).toEqual([...readOnly].sort());
    const submit = actionsOf(s.template, fn('ApiSubmitJob'));
    for (const a of ['sqs:CreateQueue', 'lambda:InvokeFunction', 'scheduler:CreateSchedule', 'dynamodb:PutItem']) expect(submit).toContain(a);
    expect(submit).not.toContain('states:StartExecution');
    const trigger = actionsOf(s.template, fn('ApiTriggerCheckpoint'));
    expect(trigger).toContain('states:StartExecution');
    expect(trigger).not.toContain('sqs:CreateQueue');
    expect(trigger).not.toContain('lambda:InvokeFunction');
    const cancel = actionsOf(s.template, fn('ApiCancelJob'));
    expect(cancel).toContain('sqs:DeleteQueue');
    expect(cancel).toContain('scheduler:DeleteSchedule');
    expect(cancel).not.toContain('scheduler:CreateSchedule');
    const taskUnit = actionsOf(s.template, fn('TaskUnit'));
    for (const a of ['sqs:ReceiveMessage', 'sqs:SendMessage', 's3:PutObject', 'dynamodb:UpdateItem']) expect(taskUnit).toContain(a);
    expect(taskUnit).not.toContain('sqs:CreateQueue');
    // Only the Lambda task unit reads and writes hand-overs, and only under handover/.
    const handover = statements(s.template).filter((x) => JSON.stringify(x.s.Resource).includes('/handover/*'));
    expect(handover.map((x) => x.roles)).toEqual([[fn('TaskUnit')]]);
    expect(arr(handover[0]!.s.Action).sort()).toEqual(['s3:GetObject', 's3:PutObject']);
    expect(taskUnit).not.toContain('scheduler:CreateSchedule');
  });

  it('passes cdk-nag AwsSolutions: nothing unacknowledged, every acknowledgement with a reason', () => {
    const errors = (s.report.pluginReports ?? []).flatMap((r: Json) => r.violations ?? []).filter((v: Json) => v.severity === 'error');
    expect(errors).toEqual([]);
    expect(Annotations.fromStack(s.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
    // The acknowledgements are on the constructs, each with a reason.
    const acks = s.stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules').map((m) => m.data as Record<string, string>));
    const ids = acks.flatMap((a) => Object.keys(a));
    expect(ids.some((id) => /AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:sluice-\*\]/.test(id))).toBe(true);
    expect(ids.some((id) => id.endsWith('AwsSolutions-L1'))).toBe(true);
    for (const a of acks) for (const reason of Object.values(a)) expect(String(reason).length).toBeGreaterThan(20);
  });

  it('fails the nag check for a wildcard that has no documented reason', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const { stack } = buildApp(app);
    stack.sluice.taskUnit.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: ['arn:aws:sqs:*:*:*'] }));
    expect(() => app.synth()).toThrow(/AwsSolutions-IAM5/);
  });
});

describe('SluiceStack with Fargate task units (context sluice:fargate=true)', () => {
  let s: ReturnType<typeof synth>;
  beforeAll(() => {
    s = synth({ 'aws:cdk:bundling-stacks': [], 'sluice:fargate': 'true', 'sluice:launcher': 'fargate' });
  }, 120_000);

  it('defines the task unit as a Fargate task from infra/docker, with no Docker needed to synthesize', () => {
    s.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      ContainerDefinitions: [
        Match.objectLike({
          Name: 'task-unit',
          Image: Match.objectLike({ 'Fn::Sub': Match.stringLikeRegexp('container-assets') }),
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        }),
      ],
    });
    const assets = JSON.parse(readFileSync(join(s.directory, `${s.stack.stackName}.assets.json`), 'utf8'));
    const images = Object.values<Json>(assets.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerFile).toBe('infra/docker/task-unit.Dockerfile');
    expect(existsSync(join(s.directory, images[0].source.directory, 'node_modules'))).toBe(false);
    s.template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
  });

  it('lets the API start and stop Fargate units (RunTask on the task definition, PassRole to ECS only)', () => {
    const submit = s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, s.stack.sluice.apiFunctions.submitJob)]!;
    expect(submit.Properties.Environment.Variables.SLUICE_LAUNCHER).toBe('fargate');
    const taskDefId = Object.keys(s.template.findResources('AWS::ECS::TaskDefinition'))[0]!;
    const run = statements(s.template).find((x) => arr(x.s.Action).includes('ecs:RunTask'));
    expect(run?.s.Resource).toEqual({ Ref: taskDefId });
    const pass = statements(s.template).find((x) => arr(x.s.Action).includes('iam:PassRole') && JSON.stringify(x.s.Condition).includes('ecs-tasks'));
    expect(pass).toBeDefined();
  });

  it('passes cdk-nag AwsSolutions too', () => {
    const errors = (s.report.pluginReports ?? []).flatMap((r: Json) => r.violations ?? []).filter((v: Json) => v.severity === 'error');
    expect(errors).toEqual([]);
  });
});

describe('SluiceStack options: the API account role, API logging, observability', () => {
  it('sets the account role only when asked (sluice:apiGatewayCloudWatchRole=true)', () => {
    const { template, report } = synth({ 'aws:cdk:bundling-stacks': [], 'sluice:apiGatewayCloudWatchRole': 'true' });
    template.resourceCountIs('AWS::ApiGateway::Account', 1);
    const errors = (report.pluginReports ?? []).flatMap((r: Json) => r.violations ?? []).filter((v: Json) => v.severity === 'error');
    expect(errors).toEqual([]);
  }, 120_000);

  it('turns API logging off for an account without the role (sluice:apiLogging=false), cdk-nag still clean', () => {
    const { template, report } = synth({ 'aws:cdk:bundling-stacks': [], 'sluice:apiLogging': 'false' });
    const stage = Object.values<Json>(template.findResources('AWS::ApiGateway::Stage'))[0]!.Properties;
    expect(stage.AccessLogSetting).toBeUndefined();
    expect(stage.MethodSettings).toEqual([expect.objectContaining({ LoggingLevel: 'OFF', MetricsEnabled: true })]);
    expect(stage.TracingEnabled).toBe(true);
    const errors = (report.pluginReports ?? []).flatMap((r: Json) => r.violations ?? []).filter((v: Json) => v.severity === 'error');
    expect(errors).toEqual([]);
  }, 120_000);

  it('takes the alarm thresholds and actions of the observability prop', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Watched');
    const topic = new sns.Topic(stack, 'Pager');
    new Sluice(stack, 'Sluice', { observability: { checkpointAgeThreshold: Duration.minutes(10), inputLagThreshold: Duration.seconds(30), inputLagMinutes: 3, alarmActions: [new SnsAction(topic)] } });
    const alarms = Object.values<Json>(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms).toHaveLength(6);
    for (const a of alarms) expect(a.AlarmActions).toEqual([{ Ref: Object.keys(Template.fromStack(stack).findResources('AWS::SNS::Topic'))[0] }]);
    const insights = alarms.filter((a) => a.Metrics).map((a) => [a.Threshold, a.EvaluationPeriods, a.DatapointsToAlarm]);
    expect(insights).toEqual(expect.arrayContaining([[600_000, 1, undefined], [30_000, 3, 3]]));
    expect(() => new Sluice(new Stack(new App(), 'S'), 'Sluice', { observability: { inputLagMinutes: 0 } })).toThrow('observability.inputLagMinutes must be a whole number of minutes, at least 1, got 0');
  });

  it('has no dashboard and no alarms with sluice:observability=false', () => {
    const { template } = synth({ 'aws:cdk:bundling-stacks': [], 'sluice:nag': false, 'sluice:observability': 'false' });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
  }, 120_000);
});

describe('the construct with your own jobs module (jobs prop)', () => {
  const fixture = join(import.meta.dirname, 'fixtures', 'jobs.ts');

  it('bundles that module, not the examples, into every function', () => {
    const app = new App();
    const stack = new Stack(app, 'Own');
    new Sluice(stack, 'Sluice', { jobs: fixture });
    const assembly = app.synth();
    const assets = JSON.parse(readFileSync(join(assembly.directory, 'Own.assets.json'), 'utf8'));
    const bundles = Object.values<Json>(assets.files)
      .map((f) => f.source.path as string)
      .filter((p) => p.startsWith('asset.'))
      .map((p) => readFileSync(join(assembly.directory, p, 'index.mjs'), 'utf8'));
    expect(bundles.length).toBe(5); // task unit, supervisor, coordinator, API, web UI
    for (const code of bundles.filter((c) => !c.includes('serveUi'))) {
      expect(code).toContain('a job only this fixture defines');
      expect(code).not.toContain('recommendation-join');
    }
  }, 180_000);

  it('says which path is missing, and that a Fargate image with your jobs is yours to build', () => {
    expect(() => new Sluice(new Stack(new App(), 'S'), 'Sluice', { jobs: 'no/such/jobs.ts' })).toThrow(/Sluice jobs: no jobs module at .*no\/such\/jobs\.ts/);
    expect(() => new Sluice(new Stack(new App(), 'S'), 'Sluice', { jobs: fixture, fargate: {} })).toThrow(/with your own jobs, build an image that bundles them and pass fargate\.image/);
    expect(() => new Sluice(new Stack(new App(), 'S'), 'Sluice', { jobs: fixture, fargate: { image: 'example/task-unit:1' } })).not.toThrow();
  });
});
