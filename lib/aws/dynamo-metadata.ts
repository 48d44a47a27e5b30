/**
 * MetadataStore on one DynamoDB table with string keys `pk` (hash) and `sk` (range).
 * Values are marshalled by hand (S, N, BOOL, NULL, L, M): small, and it keeps numbers as JS numbers.
 * (@aws-sdk/util-dynamodb keeps them so only with options added in late 2024 — `allowImpreciseNumbers`,
 * a function `wrapNumbers` — and Lambda functions load @aws-sdk/* from their runtime, whose SDK may
 * predate them.)
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { serviceEndpoint } from '../config';
import type { Condition, ItemChanges, MetadataStore, MetaItem, MetaValue, QueryOptions, StoredItem } from '../ports/metadata-store';
import { checkItemSize, ItemLimitError, MAX_ITEM_BYTES } from '../ports/item-size';
import { validateChanges, validateConditions, validateItem, validateKeys, validateQueryOptions } from '../memory/metadata-store';
import type { AwsClients } from './clients';
import { callAws, isAwsErrorCode, type AwsErrorContext } from './errors';

type AttributeMap = Record<string, AttributeValue>;

export function marshalValue(value: MetaValue): AttributeValue {
  if (value === null) return { NULL: true };
  switch (typeof value) {
    case 'string':
      return { S: value };
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`cannot store the number ${value}`);
      return { N: String(value) };
    case 'boolean':
      return { BOOL: value };
  }
  if (Array.isArray(value)) return { L: value.map((v) => marshalValue(v === undefined ? null : v)) };
  return { M: marshalItem(value) };
}

/** Object members that are undefined are left out, as JSON would. */
export function marshalItem(item: MetaItem): AttributeMap {
  const out: AttributeMap = {};
  for (const key in item) {
    const v = item[key];
    if (v !== undefined) out[key] = marshalValue(v);
  }
  return out;
}

export function unmarshalValue(av: AttributeValue): MetaValue {
  if (av.S !== undefined) return av.S;
  if (av.N !== undefined) return Number(av.N);
  if (av.BOOL !== undefined) return av.BOOL;
  if (av.NULL !== undefined) return null;
  if (av.L !== undefined) return av.L.map(unmarshalValue);
  if (av.M !== undefined) return unmarshalItem(av.M);
  throw new Error(`unsupported DynamoDB attribute type: ${Object.keys(av).join(',')}`);
}

/** The item without its key attributes. */
export function unmarshalItem(map: AttributeMap): MetaItem {
  const out: MetaItem = {};
  for (const key in map) if (key !== 'pk' && key !== 'sk') out[key] = unmarshalValue(map[key]!);
  return out;
}

/** Names/values placeholders for one expression; attribute names never go into the text. */
class ExpressionBuilder {
  readonly names: Record<string, string> = {};
  readonly values: AttributeMap = {};
  private n = 0;
  name(attr: string): string {
    const key = `#n${this.n++}`;
    this.names[key] = attr;
    return key;
  }
  value(v: MetaValue): string {
    const key = `:v${this.n++}`;
    this.values[key] = marshalValue(v);
    return key;
  }
  condition(conditions: readonly Condition[]): string | undefined {
    if (conditions.length === 0) return undefined;
    return conditions
      .map((c) => {
        const name = this.name(c.attr);
        if (!('value' in c)) return c.op === 'exists' ? `attribute_exists(${name})` : `attribute_not_exists(${name})`;
        return `${name} ${c.op} ${this.value(c.value)}`;
      })
      .join(' AND ');
  }
  /** The parameters, leaving out empty maps (DynamoDB rejects them). */
  params() {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export class DynamoMetadataStore implements MetadataStore {
  private readonly table: string;

  constructor(private readonly clients: AwsClients) {
    this.table = clients.config.table;
  }

  private context(operation: string): AwsErrorContext {
    const { region } = this.clients.config;
    const endpoint = serviceEndpoint(this.clients.config, 'dynamodb');
    return { service: 'dynamodb', endpoint, region, operation, table: this.table };
  }

  private key(pk: string, sk: string): AttributeMap {
    validateKeys(pk, sk);
    return { pk: { S: pk }, sk: { S: sk } };
  }

  async get(pk: string, sk: string): Promise<MetaItem | undefined> {
    const Key = this.key(pk, sk);
    const { Item } = await callAws(this.context('GetItem'), () =>
      this.clients.dynamodb.send(new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true })),
    );
    return Item && unmarshalItem(Item);
  }

  async put(pk: string, sk: string, item: MetaItem, conditions: readonly Condition[] = []): Promise<boolean> {
    const Key = this.key(pk, sk);
    validateItem(item);
    validateConditions(conditions);
    // Named here, before DynamoDB answers a bare ValidationException.
    checkItemSize(pk, sk, item);
    const expr = new ExpressionBuilder();
    const condition = expr.condition(conditions);
    try {
      await callAws(this.context('PutItem'), () =>
        this.clients.dynamodb.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...marshalItem(item), ...Key },
            ...(condition ? { ConditionExpression: condition, ...expr.params() } : {}),
          }),
        ),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async update(pk: string, sk: string, changes: ItemChanges, conditions: readonly Condition[] = []): Promise<MetaItem | undefined> {
    const Key = this.key(pk, sk);
    validateChanges(changes);
    validateConditions(conditions);
    const expr = new ExpressionBuilder();
    const sets = Object.entries(changes.set ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([attr, v]) => `${expr.name(attr)} = ${expr.value(v)}`);
    const adds = Object.entries(changes.add ?? {}).map(([attr, v]) => `${expr.name(attr)} ${expr.value(v)}`);
    const removes = (changes.remove ?? []).map((attr) => expr.name(attr));
    const clauses = [
      sets.length ? `SET ${sets.join(', ')}` : '',
      adds.length ? `ADD ${adds.join(', ')}` : '',
      removes.length ? `REMOVE ${removes.join(', ')}` : '',
    ].filter(Boolean);
    const condition = expr.condition(conditions);
    try {
      const { Attributes } = await callAws(this.context('UpdateItem'), () =>
        this.clients.dynamodb.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key,
            ...(clauses.length ? { UpdateExpression: clauses.join(' ') } : {}),
            ...(condition ? { ConditionExpression: condition } : {}),
            ...expr.params(),
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      return unmarshalItem(Attributes ?? {});
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      // The adapter cannot size the stored item: DynamoDB refuses an update that would outgrow it.
      if (isItemSizeFailure(err)) throw new ItemLimitError(`item ${pk} / ${sk} would be over DynamoDB's item size limit of ${MAX_ITEM_BYTES} bytes (400 KB) after this update`, { cause: err });
      throw err;
    }
  }

  async query(pk: string, skPrefix = '', options: QueryOptions = {}): Promise<StoredItem[]> {
    validateKeys(pk);
    validateQueryOptions(options);
    const out: StoredItem[] = [];
    let start: AttributeMap | undefined;
    do {
      const page = await callAws(this.context('Query'), () =>
        this.clients.dynamodb.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: skPrefix ? '#pk = :pk AND begins_with(#sk, :prefix)' : '#pk = :pk',
            ExpressionAttributeNames: skPrefix ? { '#pk': 'pk', '#sk': 'sk' } : { '#pk': 'pk' },
            ExpressionAttributeValues: { ':pk': { S: pk }, ...(skPrefix ? { ':prefix': { S: skPrefix } } : {}) },
            ConsistentRead: true,
            ExclusiveStartKey: start,
            ...(options.newestFirst ? { ScanIndexForward: false } : {}),
            ...(options.limit !== undefined ? { Limit: options.limit - out.length } : {}),
          }),
        ),
      );
      for (const raw of page.Items ?? []) out.push({ pk, sk: raw.sk!.S!, item: unmarshalItem(raw) });
      start = page.LastEvaluatedKey;
    } while (start && (options.limit === undefined || out.length < options.limit));
    return out;
  }

  async delete(pk: string, sk: string): Promise<void> {
    const Key = this.key(pk, sk);
    await callAws(this.context('DeleteItem'), () =>
      this.clients.dynamodb.send(new DeleteItemCommand({ TableName: this.table, Key })),
    );
  }
}

function isItemSizeFailure(err: unknown): boolean {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return isAwsErrorCode(cause, 'ValidationException') && /item size/i.test(cause instanceof Error ? cause.message : String(cause));
}

function isConditionFailure(err: unknown): boolean {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return cause instanceof ConditionalCheckFailedException || isAwsErrorCode(cause, 'ConditionalCheckFailedException');
}
