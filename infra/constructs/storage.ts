/**
 * Where Sluice keeps its data: the metadata table, the data bucket and its access-log bucket, and
 * the name prefix of the SQS queues jobs create at run time. Grants on them are scoped here: the
 * one table, prefixes of the one bucket, queues under the one name prefix.
 *
 * - DynamoDB table (pk/sk strings, on demand, point-in-time recovery): jobs, units, regions,
 *   checkpoints, availability flags.
 * - S3 bucket (private, encrypted, TLS only, access-logged): snapshots and manifests under
 *   `checkpoints/` (expire after `checkpointRetentionDays`), sink staging under `staging/` (1 day),
 *   task unit hand-overs under `handover/` (2 days), output under `output/`, inputs under
 *   `input/`; incomplete multipart uploads are aborted.
 */
import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { TTL_ATTRIBUTE } from '../../lib/ports/metadata-keys';
import { acknowledge, type WildcardReasons } from '../nag';
import type { FlatLogicalIds } from './logical-ids';

/** The S3 prefixes Sluice uses. */
export const PREFIXES = { checkpoints: 'checkpoints/', staging: 'staging/', output: 'output/', input: 'input/', handover: 'handover/' } as const;

export interface SluiceStorageProps {
  queuePrefix: string;
  checkpointRetentionDays: number;
  dataRemovalPolicy: RemovalPolicy;
  wildcards: WildcardReasons;
  logicalIds: FlatLogicalIds;
}

export class SluiceStorage extends Construct {
  readonly table: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly queuePrefix: string;
  /** What every function and task unit is told about the storage (lib/config.ts reads it). */
  readonly env: Record<string, string>;
  private readonly wildcards: WildcardReasons;

  constructor(scope: Construct, id: string, props: SluiceStorageProps) {
    super(scope, id);
    props.logicalIds.flatten(this);
    this.queuePrefix = props.queuePrefix;
    this.wildcards = props.wildcards;

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // Checkpoint acknowledgements expire once read (lib/ports/metadata-keys.ts); TTL deletes are free.
      timeToLiveAttribute: TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.dataRemovalPolicy,
    });

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
      removalPolicy: props.dataRemovalPolicy,
    });
    acknowledge(this.accessLogsBucket, 'AwsSolutions-S1', "This bucket receives the data bucket's server access logs; logging it to itself would loop.");

    this.bucket = new s3.Bucket(this, 'Data', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'data/',
      removalPolicy: props.dataRemovalPolicy,
      lifecycleRules: [
        { id: 'expire-checkpoints', prefix: PREFIXES.checkpoints, expiration: Duration.days(props.checkpointRetentionDays) },
        { id: 'expire-staging', prefix: PREFIXES.staging, expiration: Duration.days(1) },
        // A hand-over is read within seconds by the next invocation; older ones are history.
        { id: 'expire-handover', prefix: PREFIXES.handover, expiration: Duration.days(2) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    this.env = {
      SLUICE_TABLE: this.table.tableName,
      SLUICE_BUCKET: this.bucket.bucketName,
      SLUICE_QUEUE_PREFIX: this.queuePrefix,
    };
  }

  grantTable(role: iam.IRole, access: 'read' | 'write'): void {
    const actions = ['dynamodb:GetItem', 'dynamodb:Query', ...(access === 'write' ? ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'] : [])];
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: access === 'write' ? 'TableReadWrite' : 'TableRead', actions, resources: [this.table.tableArn] }));
  }

  grantObjects(role: iam.IRole, who: string, prefixes: string[], actions: string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(`${who}Objects`, `Objects are written per job and checkpoint under fixed prefixes of the one bucket (${prefixes.join(', ')}); the statement names those prefixes only.`),
        actions,
        resources: prefixes.map((p) => this.bucket.arnForObjects(`${p}*`)),
      }),
    );
  }

  grantList(role: iam.IRole, who: string, prefixes: string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(`${who}List`, 'Listing is limited to the Sluice prefixes by the s3:prefix condition.'),
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
      }),
    );
  }

  grantQueues(role: iam.IRole, who: string, actions: string[]): void {
    const queues = Stack.of(this).formatArn({ service: 'sqs', resource: `${this.queuePrefix}-*` });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(
          `${who}Queues`,
          `SQS FIFO queues are created per job (one per sub-partition and per task unit), named ${this.queuePrefix}-<jobId>-...; the statement covers that prefix only.`,
        ),
        actions,
        resources: [queues],
      }),
    );
  }
}
