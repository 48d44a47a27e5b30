/** BlobStore on one S3 bucket. */
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { serviceEndpoint } from '../config';
import type { BlobInfo, BlobStore, ListOptions } from '../ports/blob-store';
import type { AwsClients } from './clients';
import { SluiceAwsError, callAws, isAwsErrorCode, type AwsErrorContext } from './errors';

/** S3 answers a HEAD of a missing key with a bare 404, which the SDK names NotFound. */
const MISSING_KEY = ['NoSuchKey', 'NotFound'];

function isMissingKey(err: unknown): boolean {
  const cause = err instanceof SluiceAwsError ? err.cause : err;
  return isAwsErrorCode(cause, ...MISSING_KEY);
}

export class S3BlobStore implements BlobStore {
  readonly location: string;
  private readonly bucket: string;

  constructor(private readonly clients: AwsClients) {
    this.bucket = clients.config.bucket;
    this.location = `s3://${this.bucket}`;
  }

  private context(operation: string, key?: string): AwsErrorContext {
    const { region } = this.clients.config;
    const endpoint = serviceEndpoint(this.clients.config, 's3');
    return { service: 's3', endpoint, region, operation, bucket: this.bucket, ...(key !== undefined ? { key } : {}) };
  }

  private missingObject(key: string, cause: unknown): SluiceAwsError {
    return new SluiceAwsError(`S3 object '${this.location}/${key}' does not exist`, 'aws', 's3', { cause });
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    await callAws(this.context('PutObject', key), () =>
      // An explicit length: the SDK cannot tell an empty body's (markers are empty) and warns.
      this.clients.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength })),
    );
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await callAws(this.context('GetObject', key), async () => {
        const res = await this.clients.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        return res.Body!.transformToByteArray();
      });
    } catch (err) {
      if (isMissingKey(err)) return undefined;
      throw err;
    }
  }

  async getRange(key: string, start: number, endExclusive: number): Promise<Uint8Array> {
    // HTTP ranges cannot be empty; S3 answers 416 for a start at or past the end.
    if (endExclusive <= start) return new Uint8Array(0);
    try {
      return await callAws(this.context('GetObject', key), async () => {
        const res = await this.clients.s3.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${start}-${endExclusive - 1}` }),
        );
        return res.Body!.transformToByteArray();
      });
    } catch (err) {
      if (isMissingKey(err)) throw this.missingObject(key, err);
      if (isAwsErrorCode(err instanceof SluiceAwsError ? err.cause : err, 'InvalidRange')) return new Uint8Array(0);
      throw err;
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    try {
      const res = await callAws(this.context('HeadObject', key), () =>
        this.clients.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
      );
      return { key, size: res.ContentLength ?? 0 };
    } catch (err) {
      // Also what a missing bucket looks like: a HEAD response has no body to tell them apart.
      if (isMissingKey(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    let token: string | undefined;
    do {
      const page = await callAws(this.context('ListObjectsV2'), () =>
        this.clients.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      const infos = (page.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size ?? 0 }));
      out.push(...infos);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (options.until?.(infos)) break;
    } while (token);
    return out;
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    // CopySource is "bucket/key", URL-encoded per path segment.
    const source = `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    try {
      await callAws(this.context('CopyObject', fromKey), () =>
        this.clients.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: source })),
      );
    } catch (err) {
      if (isMissingKey(err)) throw this.missingObject(fromKey, err);
      throw err;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += 1000) chunks.push(keys.slice(i, i + 1000));
    await Promise.all(
      chunks.map(async (chunk) => {
        const res = await callAws(this.context('DeleteObjects'), () =>
          this.clients.s3.send(
            new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }),
          ),
        );
        const errors = res.Errors ?? [];
        if (errors.length > 0) {
          const e = errors[0]!;
          throw new SluiceAwsError(
            `could not delete ${errors.length} object(s) in ${this.location}, e.g. '${e.Key}': ${e.Code}: ${e.Message ?? ''}`,
            'aws',
            's3',
          );
        }
      }),
    );
  }
}
