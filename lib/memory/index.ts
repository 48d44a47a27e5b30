/** In-memory implementations of the three ports, for unit tests and large simulations. */
import { MemoryBlobStore } from './blob-store';
import { MemoryChannelTransport } from './channels';
import { MemoryMetadataStore } from './metadata-store';

export { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore };

export interface MemoryPorts {
  channels: MemoryChannelTransport;
  metadata: MemoryMetadataStore;
  blobs: MemoryBlobStore;
}

export function createMemoryPorts(): MemoryPorts {
  return { channels: new MemoryChannelTransport(), metadata: new MemoryMetadataStore(), blobs: new MemoryBlobStore() };
}

/** Requests made through these ports since creation or the last reset, per service and in total. */
export function memoryRequestCounts(ports: MemoryPorts): { sqs: number; dynamodb: number; s3: number; total: number } {
  const { channels, metadata, blobs } = ports;
  return { sqs: channels.requests, dynamodb: metadata.requests, s3: blobs.requests, total: channels.requests + metadata.requests + blobs.requests };
}

export function resetMemoryRequestCounts(ports: MemoryPorts): void {
  ports.channels.requests = 0;
  ports.metadata.requests = 0;
  ports.blobs.requests = 0;
}
