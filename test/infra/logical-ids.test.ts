/**
 * The Sluice construct is split into sub-constructs (infra/constructs/), and a construct's path
 * makes its resources' CloudFormation logical ids: a changed id makes CloudFormation replace the
 * resource, so a deployed stack would get a new, empty table and buckets. These tests synthesize
 * the stack and compare its (logical id, type) pairs with the ones synthesized by the flat
 * construct before the split (test/infra/fixtures/logical-ids.json, recorded once from that code
 * with `sluice:fargate` off and on).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { Sluice } from '../../infra/sluice-construct';
import { SluiceStack, type SluiceStackProps } from '../../infra/stack';

const recorded = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'logical-ids.json'), 'utf8')) as Record<'lambda' | 'fargate', string[]>;

type StackSluiceProps = NonNullable<SluiceStackProps['sluice']>;

/** The props that reproduce what the flat construct synthesized: it set the account's API Gateway role and had no dashboard. */
const AS_BEFORE: StackSluiceProps = { apiGatewayCloudWatchRole: true, observability: false };

function synth(props: StackSluiceProps, configure?: (stack: SluiceStack) => void) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new SluiceStack(app, 'SluiceStack', { sluice: props });
  configure?.(stack);
  const template = app.synth().getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
  return { stack, template };
}

/**
 * `<logical id> <type>` of every resource. An API deployment's id ends in a hash of the API's
 * content (CDK makes a new deployment whenever the API changes); its path-derived part is kept.
 */
const normalized = (list: string[]) => list.map((line) => line.replace(/^(\S+)[0-9a-f]{32}( AWS::ApiGateway::Deployment)$/, '$1$2')).sort();
const ids = (template: { Resources: Record<string, { Type: string }> }) => normalized(Object.entries(template.Resources).map(([id, r]) => `${id} ${r.Type}`));

/**
 * Resources added since the fixture was recorded, each a new concept that replaces nothing:
 * the web UI's function (its role, policy, log group) and its API resources, methods and
 * invoke permissions (GET /, /ui, /ui/{proxy+}).
 */
const ADDED_SINCE = /^Sluice(WebUi|Apiui|ApiGET)/;

/** Every recorded id is still there; what is new is only what ADDED_SINCE names. */
function expectKept(template: { Resources: Record<string, { Type: string }> }, recordedIds: string[]) {
  const now = ids(template);
  const before = normalized(recordedIds);
  expect(before.filter((x) => !now.includes(x))).toEqual([]);
  const added = now.filter((x) => !before.includes(x));
  expect(added.filter((x) => !ADDED_SINCE.test(x))).toEqual([]);
  expect(added.length).toBe(15);
}

describe('logical ids across the split into sub-constructs', () => {
  it('are the ones the flat construct had (Lambda task units)', () => {
    expectKept(synth(AS_BEFORE).template, recorded.lambda);
  });

  it('are the ones the flat construct had (with Fargate task units)', () => {
    expectKept(synth({ ...AS_BEFORE, fargate: {}, launcher: 'fargate' }).template, recorded.fargate);
  });

  it('adds only the dashboard and alarms when observability is on; drops only the account role when it is off', () => {
    const { template } = synth({ ...AS_BEFORE, observability: {}, apiGatewayCloudWatchRole: false });
    const now = new Set(ids(template));
    const before = new Set(normalized(recorded.lambda));
    const removed = [...before].filter((x) => !now.has(x));
    const added = [...now].filter((x) => !before.has(x));
    expect(removed).toEqual([expect.stringMatching(/^SluiceApiAccount[0-9A-F]{8} AWS::ApiGateway::Account$/), expect.stringMatching(/^SluiceApiCloudWatchRole[0-9A-F]{8} AWS::IAM::Role$/)]);
    const observability = added.filter((x) => !ADDED_SINCE.test(x));
    expect(new Set(observability.map((x) => x.split(' ')[1]))).toEqual(new Set(['AWS::CloudWatch::Dashboard', 'AWS::CloudWatch::Alarm']));
    for (const line of observability) expect(line).toMatch(/^SluiceObservability/);
  });

  it('keeps the names CDK derives from paths: the job schedule group and the task family', () => {
    const { template } = synth({ ...AS_BEFORE, fargate: {}, launcher: 'fargate' });
    const of = (type: string) => Object.values(template.Resources).filter((r) => r.Type === type).map((r) => r.Properties);
    // What the flat construct generated (a new group name would replace the group and its job schedules).
    expect(of('AWS::Scheduler::ScheduleGroup')).toEqual([expect.objectContaining({ Name: 'SluiceStack-Sluice-JobSchedules-E15E5643' })]);
    expect(of('AWS::ECS::TaskDefinition')).toEqual([expect.objectContaining({ Family: 'SluiceStackSluiceTaskUnitTask72460B46' })]);
  });

  it('gives a resource added to a sub-construct later the id it would have as a child of Sluice', () => {
    const { stack, template } = synth(AS_BEFORE, (s) => {
      new iam.Role(s.sluice.storage, 'LateRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    });
    // The same path without the Storage segment, in a stack of its own.
    const flat = new Stack(new App(), 'SluiceStack');
    const expected = flat.getLogicalId(new iam.Role(new Construct(flat, 'Sluice'), 'LateRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') }).node.defaultChild as iam.CfnRole);
    expect(expected).toMatch(/^SluiceLateRole[0-9A-F]{8}$/);
    expect(template.Resources[expected]?.Type).toBe('AWS::IAM::Role');
    expect(stack.getLogicalId(stack.sluice.table.node.defaultChild as never)).toBe('SluiceTableFF98E531');
  });

  it('keeps them wherever the construct sits (two installations in one stack do not collide)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Streaming');
    new Sluice(stack, 'Etl', { queuePrefix: 'etl' });
    new Sluice(new Construct(stack, 'Team'), 'Sluice', { queuePrefix: 'team' });
    const template = Template.fromStack(stack);
    const tables = Object.keys(template.findResources('AWS::DynamoDB::Table')).sort();
    expect(tables).toHaveLength(2);
    expect(tables[0]).toMatch(/^EtlTable[0-9A-F]{8}$/);
    expect(tables[1]).toMatch(/^TeamSluiceTable[0-9A-F]{8}$/);
  });
});
