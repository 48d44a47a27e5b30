/**
 * Receipt handles expire with their visibility timeout, as on SQS FIFO, through the SQS adapter
 * against the emulator (moto with the project's patch 5). Not part of the LocalStack lane:
 * LocalStack accepts an expired receipt for ChangeMessageVisibility and, after the message was
 * received again, for DeleteMessageBatch (localstack/README.md); AWS refuses both.
 */
import { afterAll } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createAwsPorts, type AwsClients } from '../../lib/aws';
import { receiptExpiryContract } from '../contracts/channels.contract';

const opened: AwsClients[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

receiptExpiryContract('SQS', async () => {
  const ports = createAwsPorts(loadConfig());
  opened.push(ports.clients);
  return ports.channels;
});
