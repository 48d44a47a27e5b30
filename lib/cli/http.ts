/** The CLI's HTTP client: JSON requests to the job API, signed with SigV4 for a deployed one. */
import { CliError, type ApiRequest } from './parse';

/** The region of an API Gateway URL (`<id>.execute-api.<region>.amazonaws.com`), else the environment's. */
export function regionOf(url: URL, env: Record<string, string | undefined> = process.env): string {
  const m = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/i.exec(url.hostname);
  return m?.[1] ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

/** A SigV4 signer hashing with node:crypto through @smithy/hash-node (both loaded on first use: only deployed APIs need them). */
export async function sigv4Signer(options: {
  service: string;
  region: string;
  credentials: ConstructorParameters<typeof import('@smithy/signature-v4').SignatureV4>[0]['credentials'];
  applyChecksum?: boolean;
}) {
  const [{ SignatureV4 }, { Hash }] = await Promise.all([import('@smithy/signature-v4'), import('@smithy/hash-node')]);
  return new SignatureV4({ ...options, sha256: Hash.bind(null, 'sha256') });
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
