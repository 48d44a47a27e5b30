/** The AWS implementations of the three ports, built from one config. */
import type { SluiceConfig } from '../config';
import type { BlobStore, ChannelTransport, MetadataStore } from '../ports';
import { createAwsClients, type AwsClients, type ClientOptions } from './clients';
import { DynamoMetadataStore } from './dynamo-metadata';
import { S3BlobStore } from './s3-blob-store';
import { SqsChannelTransport } from './sqs-channels';

export interface AwsPorts {
  channels: ChannelTransport;
  metadata: MetadataStore;
  blobs: BlobStore;
  clients: AwsClients;
}

export function createAwsPorts(config: SluiceConfig, options?: ClientOptions): AwsPorts {
  const clients = createAwsClients(config, options);
  return {
    channels: new SqsChannelTransport(clients),
    metadata: new DynamoMetadataStore(clients),
    blobs: new S3BlobStore(clients),
    clients,
  };
}

export * from './clients';
export * from './errors';
export { SqsChannelTransport, fifoQueueName } from './sqs-channels';
export { DynamoMetadataStore } from './dynamo-metadata';
export { S3BlobStore } from './s3-blob-store';
export { ensureInfrastructure, checkEndpoint } from './provision';
