/**
 * cdk-nag (v3) acknowledgements with reasons.
 *
 * IAM5 (wildcards) findings name the resource as CloudFormation renders it, e.g.
 * `Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:sluice-*`, which depends on
 * logical ids and so on where the construct sits. Instead of hard-coding them, every policy
 * statement of ours that needs a wildcard carries a Sid registered here with its reason, and an
 * aspect acknowledges exactly the wildcard findings of those statements (computed the way cdk-nag
 * computes them) after the policies are final. Wildcards CDK itself adds are matched by
 * `CDK_WILDCARDS` below. A wildcard with neither stays unacknowledged and fails the nag check.
 */
import { CfnResource, Stack, Validations, type IAspect } from 'aws-cdk-lib';
import { CfnPolicy, CfnRole } from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** Why a statement needs a wildcard, by the statement's Sid. */
export class WildcardReasons {
  private readonly bySid = new Map<string, string>();

  /** Registers a Sid and returns it (for `new PolicyStatement({ sid: reasons.sid(...) })`). */
  sid(sid: string, reason: string): string {
    const known = this.bySid.get(sid);
    if (known !== undefined && known !== reason) throw new Error(`wildcard Sid '${sid}' registered twice with different reasons`);
    this.bySid.set(sid, reason);
    return sid;
  }

  reason(sid: string | undefined): string | undefined {
    return sid === undefined ? undefined : this.bySid.get(sid);
  }
}

/** Wildcards that CDK constructs add on their own, with why they are acceptable. */
export const CDK_WILDCARDS: { action?: RegExp; resource?: RegExp; reason: string }[] = [
  {
    // LambdaInvoke / grantInvoke: the function and its versions and aliases (`<fn.Arn>:*`).
    resource: /^<[A-Za-z0-9]+\.Arn>:\*$/,
    reason: 'Invoking a function also covers its versions and aliases (<function ARN>:*), as CDK grants it; no other function is reachable.',
  },
  {
    // State machine logging to CloudWatch Logs and X-Ray tracing.
    resource: /^\*$/,
    action: /^(logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups)|xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets)|ecr:GetAuthorizationToken)$/,
    reason:
      'CloudWatch Logs delivery (Step Functions logging), X-Ray tracing and ecr:GetAuthorizationToken do not support resource-level permissions; AWS documents Resource "*" for them.',
  },
];

/** What cdk-nag does to a policy resource (flattenCfnReference), to compute the same finding ids. */
export function flattenCfnReference(reference: unknown): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (Array.isArray(o['Fn::Join'])) {
        const [delimiter, items] = o['Fn::Join'] as [string, unknown[]];
        return items.map(visit).join(delimiter);
      }
      if ('Fn::Sub' in o) return visit(o['Fn::Sub']);
      if (Array.isArray(o['Fn::GetAtt'])) {
        const [resource, attribute] = o['Fn::GetAtt'] as [unknown, unknown];
        return `<${visit(resource)}.${visit(attribute)}>`;
      }
      if ('Fn::ImportValue' in o) return visit(o['Fn::ImportValue']);
      if ('Ref' in o) return `<${visit(o.Ref)}>`;
    }
    return JSON.stringify(node);
  };
  return visit(reference);
}

interface Statement {
  Sid?: string;
  Effect?: string;
  Action?: string | string[];
  Resource?: unknown;
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The IAM5 findings of one statement: `Action::x*`, `Resource::...*`. */
export function wildcardFindings(statement: Statement): { actions: string[]; resources: string[] } {
  if (statement.Effect !== 'Allow') return { actions: [], resources: [] };
  return {
    actions: list(statement.Action).filter((a) => a.includes('*')),
    resources: list(statement.Resource)
      .map(flattenCfnReference)
      .filter((r) => r.includes('*')),
  };
}

/** Acknowledges IAM5 findings of registered Sids and known CDK wildcards, on the policy resources under a scope. */
export class AcknowledgeWildcards implements IAspect {
  constructor(private readonly reasons: WildcardReasons) {}

  visit(node: IConstruct): void {
    if (!(node instanceof CfnResource)) return;
    const stack = Stack.of(node);
    const documents: { Statement?: Statement[] }[] = [];
    if (node instanceof CfnPolicy) documents.push(stack.resolve(node.policyDocument));
    else if (node instanceof CfnRole) {
      for (const p of list(stack.resolve(node.policies) as { policyDocument: unknown }[])) documents.push(stack.resolve(p.policyDocument));
    } else return;
    for (const doc of documents) {
      for (const statement of doc?.Statement ?? []) {
        const { actions, resources } = wildcardFindings(statement);
        const own = this.reasons.reason(statement.Sid);
        for (const action of actions) {
          const reason = own ?? CDK_WILDCARDS.find((w) => w.action?.test(action) && !w.resource)?.reason;
          if (reason) Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[Action::${action}]`, reason });
        }
        for (const resource of resources) {
          const reason =
            own ??
            CDK_WILDCARDS.find((w) => w.resource?.test(resource) && (!w.action || list(statement.Action).every((a) => w.action!.test(a))))?.reason;
          if (reason) Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });
        }
      }
    }
  }
}

/** A rule acknowledged on a construct, with its reason (thin wrapper, so every call has one). */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (!reason.trim()) throw new Error(`acknowledging ${id} needs a reason`);
  Validations.of(scope).acknowledge({ id, reason });
}
