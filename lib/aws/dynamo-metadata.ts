/**
 * MetadataStore on one DynamoDB table with string keys `pk` (hash) and `sk` (range).
 * Values are marshalled by @aws-sdk/util-dynamodb, set so that they come back as they went in:
 * numbers stay JS numbers both ways (no BigInt, no wrapper, no refusal of an imprecise one) and
 * object members that are undefined are left out, as JSON would.
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
import { convertToAttr, marshall, unmarshall, type marshallOptions, type unmarshallOptions } from '@aws-sdk/util-dynamodb';
import type { Condition, ItemChanges, MetadataStore, MetaItem, MetaValue, StoredItem } from '../ports/metadata-store';
import { validateChanges, validateConditions, validateItem, validateKeys } from '../memory/metadata-store';
import type { AwsClients } from './clients';
import { callAws, isAwsErrorCode, type AwsErrorContext } from './errors';

type AttributeMap = Record<string, AttributeValue>;

const MARSHALL: marshallOptions = { removeUndefinedValues: true, allowImpreciseNumbers: true };
const UNMARSHALL: unmarshallOptions = { wrapNumbers: Number };

export function marshalValue(value: MetaValue): AttributeValue {
  return convertToAttr(value, MARSHALL);
}

export function marshalItem(item: MetaItem): AttributeMap {
  return marshall(item, MARSHALL);
}

/** The item without its key attributes. */
export function unmarshalItem(map: AttributeMap): MetaItem {
  const { pk: _pk, sk: _sk, ...item } = unmarshall(map, UNMARSHALL);
  return item as MetaItem;
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
    const { endpoint, region } = this.clients.config;
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
      throw err;
    }
  }

  async query(pk: string, skPrefix = ''): Promise<StoredItem[]> {
    validateKeys(pk);
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
          }),
        ),
      );
      for (const raw of page.Items ?? []) out.push({ pk, sk: raw.sk!.S!, item: unmarshalItem(raw) });
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async delete(pk: string, sk: string): Promise<void> {
    const Key = this.key(pk, sk);
    await callAws(this.context('DeleteItem'), () =>
      this.clients.dynamodb.send(new DeleteItemCommand({ TableName: this.table, Key })),
    );
  }
}

function isConditionFailure(err: unknown): boolean {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return cause instanceof ConditionalCheckFailedException || isAwsErrorCode(cause, 'ConditionalCheckFailedException');
}
