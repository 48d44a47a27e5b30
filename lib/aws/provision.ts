/** Creates the table and bucket Sluice needs, and checks that the endpoint answers. */
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateTableCommand, DescribeTableCommand, DescribeTimeToLiveCommand, ListTablesCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { TTL_ATTRIBUTE } from '../ports/metadata-keys';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { serviceEndpoint, type SluiceConfig } from '../config';
import { createAwsClients, type AwsClients } from './clients';
import { callAws, isAwsErrorCode, SluiceAwsError } from './errors';

/** Creates the metadata table (pk/sk strings, on demand) and the bucket when missing. Idempotent. */
export async function ensureInfrastructure(config: SluiceConfig, clients: AwsClients): Promise<void> {
  await Promise.all([ensureTable(config, clients), ensureBucket(config, clients)]);
}

async function ensureTable(config: SluiceConfig, clients: AwsClients, timeoutMs = 120_000): Promise<void> {
  const ctx = { service: 'dynamodb' as const, endpoint: serviceEndpoint(config, 'dynamodb'), region: config.region, table: config.table };
  const status = async () => {
    try {
      const res = await clients.dynamodb.send(new DescribeTableCommand({ TableName: config.table }));
      return res.Table?.TableStatus;
    } catch (err) {
      if (isAwsErrorCode(err, 'ResourceNotFoundException')) return undefined;
      throw err;
    }
  };
  let current = await callAws({ ...ctx, operation: 'DescribeTable' }, status);
  if (current === 'ACTIVE') return ensureTtl(config, clients);
  if (current === undefined) {
    await callAws({ ...ctx, operation: 'CreateTable' }, async () => {
      try {
        await clients.dynamodb.send(
          new CreateTableCommand({
            TableName: config.table,
            AttributeDefinitions: [
              { AttributeName: 'pk', AttributeType: 'S' },
              { AttributeName: 'sk', AttributeType: 'S' },
            ],
            KeySchema: [
              { AttributeName: 'pk', KeyType: 'HASH' },
              { AttributeName: 'sk', KeyType: 'RANGE' },
            ],
            BillingMode: 'PAY_PER_REQUEST',
          }),
        );
      } catch (err) {
        // Another process created it first.
        if (!isAwsErrorCode(err, 'ResourceInUseException')) throw err;
      }
    });
  }
  // Real DynamoDB takes seconds to make a table ACTIVE; the emulators do it at once.
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    current = await callAws({ ...ctx, operation: 'DescribeTable' }, status);
    if (current === 'ACTIVE') return ensureTtl(config, clients);
    if (Date.now() > deadline) throw new SluiceAwsError(`DynamoDB table '${config.table}' is still ${current ?? 'missing'} after ${timeoutMs / 1000} s`, 'aws', 'dynamodb');
    await sleep(delay);
  }
}

/** Turns on TTL for the table's expiry attribute (as the CDK stack does), when it is off. */
async function ensureTtl(config: SluiceConfig, clients: AwsClients): Promise<void> {
  const ctx = { service: 'dynamodb' as const, endpoint: serviceEndpoint(config, 'dynamodb'), region: config.region, table: config.table };
  const described = await callAws({ ...ctx, operation: 'DescribeTimeToLive' }, () => clients.dynamodb.send(new DescribeTimeToLiveCommand({ TableName: config.table })));
  const ttl = described.TimeToLiveDescription;
  if (ttl?.AttributeName === TTL_ATTRIBUTE && (ttl.TimeToLiveStatus === 'ENABLED' || ttl.TimeToLiveStatus === 'ENABLING')) return;
  await callAws({ ...ctx, operation: 'UpdateTimeToLive' }, async () => {
    try {
      await clients.dynamodb.send(new UpdateTimeToLiveCommand({ TableName: config.table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }));
    } catch (err) {
      // Another process turned it on first (DynamoDB refuses a second change in progress).
      if (!isAwsErrorCode(err, 'ValidationException')) throw err;
    }
  });
}

async function ensureBucket(config: SluiceConfig, clients: AwsClients): Promise<void> {
  const ctx = { service: 's3' as const, endpoint: serviceEndpoint(config, 's3'), region: config.region, bucket: config.bucket };
  const exists = await callAws({ ...ctx, operation: 'HeadBucket' }, async () => {
    try {
      await clients.s3.send(new HeadBucketCommand({ Bucket: config.bucket }));
      return true;
    } catch (err) {
      if (isAwsErrorCode(err, 'NotFound', 'NoSuchBucket')) return false;
      throw err;
    }
  });
  if (exists) return;
  await callAws({ ...ctx, operation: 'CreateBucket' }, async () => {
    try {
      await clients.s3.send(
        new CreateBucketCommand({
          Bucket: config.bucket,
          // us-east-1 is the one region that refuses an explicit location constraint.
          ...(config.region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: config.region as never } } : {}),
        }),
      );
    } catch (err) {
      if (!isAwsErrorCode(err, 'BucketAlreadyOwnedByYou')) throw err;
    }
  });
}

/**
 * One cheap call (DynamoDB ListTables, no retries, 3 s timeout) that fails within a few seconds with the clear
 * unreachable-endpoint message when nothing answers.
 */
export async function checkEndpoint(config: SluiceConfig): Promise<void> {
  const clients = createAwsClients(config, { maxAttempts: 1, requestTimeoutMs: 3_000 });
  try {
    await callAws({ service: 'dynamodb', endpoint: serviceEndpoint(config, 'dynamodb'), region: config.region, operation: 'ListTables' }, () =>
      clients.dynamodb.send(new ListTablesCommand({ Limit: 1 })),
    );
  } finally {
    clients.destroy();
  }
}
