/** The CLI's HTTP client: JSON requests to the job API, signed with SigV4 for a deployed one. */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { CliError, type ApiRequest } from './parse';

/** SHA-256 and HMAC-SHA-256 for the SigV4 signer, on node:crypto. */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const key = typeof this.secret === 'string' ? Buffer.from(this.secret, 'utf8') : ArrayBuffer.isView(this.secret) ? Buffer.from(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength) : Buffer.from(this.secret);
    return createHmac('sha256', key);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

/** The region of an API Gateway URL (`<id>.execute-api.<region>.amazonaws.com`), else the environment's. */
export function regionOf(url: URL, env: Record<string, string | undefined> = process.env): string {
  const m = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/i.exec(url.hostname);
  return m?.[1] ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

/** A SigV4 signer hashing with node:crypto (loaded on first use: only deployed APIs need it). */
export async function sigv4Signer(options: {
  service: string;
  region: string;
  credentials: ConstructorParameters<typeof import('@smithy/signature-v4').SignatureV4>[0]['credentials'];
  applyChecksum?: boolean;
}) {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  return new SignatureV4({ ...options, sha256: NodeSha256 });
}

export async function signedHeaders(url: URL, method: string, headers: Record<string, string>, body: string | undefined): Promise<Record<string, string>> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  const signer = await sigv4Signer({ service: 'execute-api', region: regionOf(url), credentials: defaultProvider() });
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const signed = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname,
    query,
    headers: { ...headers, host: url.host },
    ...(body !== undefined ? { body } : {}),
  });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') out[k] = String(v);
  return out;
}

export async function callApi(api: string, request: ApiRequest, sigv4: boolean): Promise<{ status: number; body: unknown }> {
  const base = api.replace(/\/+$/, '');
  const url = new URL(base + request.path);
  const body = request.body !== undefined ? JSON.stringify(request.body) : undefined;
  let headers: Record<string, string> = { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
  if (sigv4) headers = await signedHeaders(url, request.method, headers, body);
  let res: Response;
  try {
    res = await fetch(url, { method: request.method, headers, ...(body !== undefined ? { body } : {}) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new CliError(`cannot reach the job API at ${base}${cause ? ` (${cause})` : ''}: is \`npm run dev\` running, or is --api / SLUICE_API_URL right?`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}
