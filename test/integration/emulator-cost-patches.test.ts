/**
 * The embedded emulator's cost patches (lib/local/emulator.ts) change how fast moto answers, never
 * what it answers: the same requests to the patched server and to moto as released give the same
 * responses. DynamoDB items of every attribute type (binary included, which takes moto's own
 * path), through GetItem, Query, Scan, UpdateItem with ALL_NEW and a failed condition returning
 * the old item; SQS send, receive (large FIFO messages), a request id on every response.
 * Both servers run here, on loopback; they are stopped at the end.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureMotoInstalled, freePort, startEmulator, type Emulator } from '../../lib/local/emulator';

interface Server {
  endpoint: string;
  stop(): Promise<void>;
}

/** moto's server as released, without the project's patches. */
async function plainMoto(): Promise<Server> {
  const { python } = await ensureMotoInstalled();
  const port = await freePort();
  const child = spawn(python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto exited with code ${child.exitCode}`);
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return {
    endpoint,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const AUTH = 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0';

async function dynamo(server: Server, action: string, body: object): Promise<{ status: number; json: unknown; requestId: string | null }> {
  const res = await fetch(server.endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${action}`, authorization: AUTH },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json(), requestId: res.headers.get('x-amzn-requestid') };
}

async function sqs(server: Server, action: string, body: object): Promise<{ status: number; json: Record<string, unknown>; requestId: string | null }> {
  const res = await fetch(server.endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}`, authorization: AUTH.replace('dynamodb', 'sqs') },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, requestId: res.headers.get('x-amzn-requestid') };
}

const ITEM = {
  pk: { S: 'JOB#j' },
  sk: { S: 'UNIT#u-1' },
  attempt: { N: '3' },
  empty: { S: '' },
  running: { BOOL: true },
  gone: { NULL: true },
  tags: { SS: ['a', 'b'] },
  sizes: { NS: ['1', '2.5'] },
  blob: { B: Buffer.from('bytes').toString('base64') },
  blobs: { BS: [Buffer.from('x').toString('base64')] },
  stats: {
    M: {
      'src#0': { M: { status: { S: 'running' }, recordsIn: { N: '1000' }, channels: { M: { 'e0/1': { M: { missing: { N: '0' } } } } } } },
      list: { L: [{ N: '1' }, { S: 'two' }, { M: { deep: { L: [{ BOOL: false }, { NULL: true }] } } }] },
      raw: { B: Buffer.from('nested').toString('base64') },
    },
  },
};

describe('emulator cost patches answer as moto does', () => {
  let patched: Emulator;
  let plain: Server;
  beforeAll(async () => {
    [patched, plain] = await Promise.all([startEmulator(), plainMoto()]);
  });
  afterAll(async () => {
    await Promise.all([patched?.stop(), plain?.stop()]);
  });

  it('DynamoDB: items of every attribute type, read and written every way, serialize the same', async () => {
    const both = async (action: string, body: object) => {
      const [a, b] = await Promise.all([dynamo(patched, action, body), dynamo(plain, action, body)]);
      expect(a.status, action).toBe(b.status);
      expect(a.requestId, `${action}: a request id`).toBeTruthy();
      return [a.json, b.json] as const;
    };
    const TableName = 'patch-check';
    await both('CreateTable', {
      TableName,
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    });
    const checks: [string, object][] = [
      ['PutItem', { TableName, Item: ITEM, ReturnValues: 'ALL_OLD' }],
      ['PutItem', { TableName, Item: { ...ITEM, sk: { S: 'UNIT#u-2' } }, ReturnValues: 'ALL_OLD' }],
      ['PutItem', { TableName, Item: { ...ITEM, attempt: { N: '4' } }, ReturnValues: 'ALL_OLD' }],
      ['GetItem', { TableName, Key: { pk: ITEM.pk, sk: ITEM.sk }, ConsistentRead: true }],
      ['GetItem', { TableName, Key: { pk: ITEM.pk, sk: { S: 'UNIT#none' } } }],
      ['Query', { TableName, KeyConditionExpression: 'pk = :p AND begins_with(sk, :s)', ExpressionAttributeValues: { ':p': ITEM.pk, ':s': { S: 'UNIT#' } } }],
      ['Query', { TableName, KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': ITEM.pk }, Limit: 1 }],
      ['Scan', { TableName }],
      [
        'UpdateItem',
        {
          TableName,
          Key: { pk: ITEM.pk, sk: ITEM.sk },
          UpdateExpression: 'SET #s = :s, attempt = :a',
          ExpressionAttributeNames: { '#s': 'stats' },
          ExpressionAttributeValues: { ':s': { M: { 'src#0': { M: { recordsIn: { N: '2000' }, l: { L: [{ S: 'x' }] } } } } }, ':a': { N: '5' } },
          ReturnValues: 'ALL_NEW',
        },
      ],
      [
        'UpdateItem',
        {
          TableName,
          Key: { pk: ITEM.pk, sk: ITEM.sk },
          UpdateExpression: 'SET attempt = :a',
          ConditionExpression: 'attempt = :old',
          ExpressionAttributeValues: { ':a': { N: '9' }, ':old': { N: '1' } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      ],
      ['DeleteItem', { TableName, Key: { pk: ITEM.pk, sk: { S: 'UNIT#u-2' } }, ReturnValues: 'ALL_OLD' }],
    ];
    for (const [action, body] of checks) {
      const [a, b] = await both(action, body);
      expect(a, action).toEqual(b);
    }
  });

  it('SQS: large FIFO messages go out and come back the same, each response with a request id', async () => {
    const both = async (action: string, body: (server: Server) => object) => {
      const [a, b] = await Promise.all([sqs(patched, action, body(patched)), sqs(plain, action, body(plain))]);
      expect(a.status, action).toBe(b.status);
      expect(a.requestId, `${action}: a request id`).toBeTruthy();
      return [a.json, b.json] as const;
    };
    const urls = new Map<Server, string>();
    const created = await both('CreateQueue', () => ({ QueueName: 'patch-check.fifo', Attributes: { FifoQueue: 'true' } }));
    urls.set(patched, created[0].QueueUrl as string);
    urls.set(plain, created[1].QueueUrl as string);
    const body = JSON.stringify({ r: Array.from({ length: 3000 }, (_, i) => ({ user: `user-${i}`, n: i })) });
    expect(body.length).toBeGreaterThan(60_000);
    const entries = [0, 1, 2].map((i) => ({ Id: String(i), MessageBody: `${i}${body}`, MessageGroupId: 'g', MessageDeduplicationId: `d${i}` }));
    const [sentA, sentB] = await both('SendMessageBatch', (s) => ({ QueueUrl: urls.get(s), Entries: entries }));
    const digests = (r: Record<string, unknown>) => (r.Successful as { Id: string; MD5OfMessageBody: string }[]).map((e) => [e.Id, e.MD5OfMessageBody]);
    expect(digests(sentA)).toEqual(digests(sentB));
    const [gotA, gotB] = await both('ReceiveMessage', (s) => ({ QueueUrl: urls.get(s), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageSystemAttributeNames: ['MessageGroupId'] }));
    const bodies = (r: Record<string, unknown>) => (r.Messages as { Body: string; MD5OfBody: string; Attributes: Record<string, string> }[]).map((m) => [m.Body, m.MD5OfBody, m.Attributes.MessageGroupId]);
    expect(bodies(gotA)).toEqual(bodies(gotB));
    expect(bodies(gotA)).toHaveLength(3);
    const [attrsA, attrsB] = await both('GetQueueAttributes', (s) => ({ QueueUrl: urls.get(s), AttributeNames: ['All'] }));
    const counts = (r: Record<string, unknown>) => {
      const a = r.Attributes as Record<string, string>;
      return [a.ApproximateNumberOfMessages, a.ApproximateNumberOfMessagesNotVisible, a.MessageRetentionPeriod, a.FifoQueue];
    };
    expect(counts(attrsA)).toEqual(counts(attrsB));
    expect(counts(attrsA)).toEqual(['0', '3', '345600', 'true']);
  });
});
