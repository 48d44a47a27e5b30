/**
 * Keeps the CloudFormation logical ids that a construct's resources had before the construct was
 * split into sub-constructs.
 *
 * A logical id is derived from the construct path below the stack, so moving a resource into a
 * sub-construct (`Sluice/Table` → `Sluice/Storage/Table`) gives it a new id, and CloudFormation
 * then REPLACES it: a new, empty table and new buckets. Here every resource under a "flattened"
 * sub-construct is renamed (Stack.renameLogicalId) to the id it would have without that path
 * segment, as CDK computes it (Names.nodeUniqueId over a probe tree of the old path, so nothing
 * of CDK's algorithm is copied). Construct ids that CDK builds from another construct's unique id
 * (the Lambda permissions named after the REST API, or after the function an event rule invokes)
 * are translated the same way.
 *
 * test/infra/logical-ids.test.ts compares the synthesized ids with the ones recorded before the split.
 */
import { Aspects, CfnElement, Names, Stack, Token, type UniqueResourceNameOptions } from 'aws-cdk-lib';
import { Construct, type IConstruct } from 'constructs';

export class FlatLogicalIds {
  private readonly flattened = new Set<IConstruct>();
  private readonly renamed = new WeakSet<CfnElement>();
  /** Paths whose id was reserved before the element existed (see reserve()). */
  private readonly reserved = new Set<string>();
  /** Stands for the app: a tree of the old paths, for Names.nodeUniqueId. */
  private readonly probeRoot = new Construct(undefined as unknown as Construct, '');

  constructor(private readonly owner: Construct) {
    // Resources added after the owner's constructor (a policy a user adds, say) are renamed at
    // synthesis, on the owner itself, before any aspect of its children reads an id.
    Aspects.of(owner).add({ visit: (node) => (node === owner ? this.apply() : undefined) }, { priority: 0 });
  }

  /** The children of `sub` keep the logical ids they had as children of the sub's parent. */
  flatten(sub: Construct): void {
    if (sub.node.scope !== this.owner && !this.flattened.has(sub.node.scope!)) {
      throw new Error(`${sub.node.path}: only a direct child of ${this.owner.node.path} (or of a flattened one) can be flattened`);
    }
    this.flattened.add(sub);
  }

  /**
   * Renames, before it exists, the element that will be created at `path` below `scope`. For an
   * element that reads its own logical id while it is constructed (API Gateway's latest deployment
   * derives its id from it, plus a hash of the API).
   */
  reserve(scope: Construct, path: string[]): void {
    const stack = Stack.of(scope);
    const scopes = [...scope.node.scopes, ...path.map((id) => ({ node: { id } }) as IConstruct)];
    const below = scopes.slice(scopes.indexOf(stack) + 1);
    const legacy = this.uniqueId(below.filter((s) => !this.flattened.has(s)).map((s) => s.node.id));
    const current = this.uniqueId(below.map((s) => s.node.id));
    if (legacy !== current) stack.renameLogicalId(current, legacy);
    this.reserved.add([scope.node.path, ...path].join('/'));
  }

  /**
   * What Names.uniqueId gave a construct at `id` below `scope` before the split (a Fargate task
   * definition's family is derived from it).
   */
  uniqueIdOf(scope: Construct, id: string): string {
    return this.uniqueId([...scope.node.scopes.slice(1).filter((s) => !this.flattened.has(s)).map((s) => s.node.id), id]);
  }

  /**
   * The physical name CDK generated (Names.uniqueResourceName) for a construct at `id` below
   * `scope` before the split: a resource whose name is derived from its path (an EventBridge
   * Scheduler group) would otherwise be renamed, which replaces it.
   */
  resourceName(scope: Construct, id: string, options: UniqueResourceNameOptions): string {
    const scopes = scope.node.scopes;
    const top = scopes.findLastIndex((s) => Stack.isStack(s) && !Token.isUnresolved(s.stackName));
    if (top < 0) throw new Error(`${scope.node.path} is not in a stack`);
    const below = scopes.slice(top + 1).filter((s) => !this.flattened.has(s)).map((s) => s.node.id);
    let probe: Construct = new Stack(undefined, 'Probe', { stackName: (scopes[top] as Stack).stackName });
    for (const part of [...below, id]) probe = new Construct(probe, part);
    return Names.uniqueResourceName(probe, options);
  }

  /** Renames every element under the owner not renamed yet. */
  apply(): void {
    const translations = this.translations();
    for (const node of this.owner.node.findAll()) {
      if (!(node instanceof CfnElement) || this.renamed.has(node) || this.reserved.has(node.node.path)) continue;
      this.renamed.add(node);
      const stack = node.stack;
      const below = node.node.scopes.slice(node.node.scopes.indexOf(stack) + 1);
      if (!below.some((s) => this.flattened.has(s))) continue;
      const current = stack.getLogicalId(node);
      const legacy = this.uniqueId(below.filter((s) => !this.flattened.has(s)).map((s) => translate(s.node.id, translations)));
      if (legacy !== current) stack.renameLogicalId(current, legacy);
    }
  }

  /** Unique ids (as embedded in other construct ids) of everything under a flattened construct: now → before. */
  private translations(): Map<string, string> {
    const map = new Map<string, string>();
    for (const sub of this.flattened) {
      for (const node of sub.node.findAll()) {
        if (node === sub) continue;
        const scopes = node.node.scopes.slice(1);
        const now = Names.nodeUniqueId(node.node);
        const before = this.uniqueId(scopes.filter((s) => !this.flattened.has(s)).map((s) => s.node.id));
        if (now !== before) map.set(now, before);
      }
    }
    return map;
  }

  /** What Names.nodeUniqueId gives a construct at this path below the app. */
  private uniqueId(path: string[]): string {
    let probe: Construct = this.probeRoot;
    for (const id of path) probe = (probe.node.tryFindChild(id) as Construct | undefined) ?? new Construct(probe, id);
    return Names.nodeUniqueId(probe.node);
  }
}

function translate(id: string, translations: Map<string, string>): string {
  let out = id;
  for (const [now, before] of translations) if (out.includes(now)) out = out.split(now).join(before);
  return out;
}
