/**
 * A browser cannot sign requests with SigV4, and the deployed API (the UI's route included) takes
 * only signed ones. This local server forwards what the browser asks (the UI's files and its API
 * calls) to the deployed API, signed with the caller's AWS credentials (the default chain, as the
 * CLI signs): `npm run ui -- --api https://<id>.execute-api.<region>.amazonaws.com/prod`, then open
 * http://127.0.0.1:3000/ui/. It binds to loopback; anyone who can reach it acts with those credentials.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signedHeaders } from '../cli/http';

/** Request headers the browser may pass on (and that are signed). */
const FORWARDED_REQUEST = ['accept', 'content-type', 'if-none-match'];
/** Response headers passed back to the browser. */
const FORWARDED_RESPONSE = ['content-type', 'etag', 'cache-control', 'location', 'allow', 'content-security-policy', 'x-content-type-options', 'referrer-policy'];
const MAX_BODY_BYTES = 1024 * 1024;

export type Signer = (url: URL, method: string, headers: Record<string, string>, body: string | undefined) => Promise<Record<string, string>>;

export interface SigningProxyOptions {
  /** The deployed API's base URL, with its stage: https://<id>.execute-api.<region>.amazonaws.com/prod */
  api: string;
  port?: number;
  host?: string;
  /** Signs a request (default: SigV4 for execute-api with the default credential chain). */
  sign?: Signer;
  log?: (line: string) => void;
}

export interface SigningProxy {
  url: string;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startSigningProxy(options: SigningProxyOptions): Promise<SigningProxy> {
  let base: URL;
  try {
    base = new URL(options.api.replace(/\/+$/, ''));
  } catch {
    throw new Error(`--api must be the API's URL (https://<id>.execute-api.<region>.amazonaws.com/<stage>), got '${options.api}'`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error(`--api must be an http(s) URL, got '${options.api}'`);
  const sign = options.sign ?? signedHeaders;
  const server = createServer(async (req, res) => {
    const started = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    let status = 502;
    try {
      const body = await readBody(req);
      if (body === undefined) {
        status = 413;
        res.writeHead(413, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: `the request body is larger than ${MAX_BODY_BYTES} bytes`, field: 'body' }));
        return;
      }
      // The browser's path goes under the API's stage: /ui/app.js -> <api>/ui/app.js, /jobs -> <api>/jobs.
      const target = new URL(base.href.replace(/\/$/, '') + (req.url ?? '/'));
      const headers: Record<string, string> = {};
      for (const name of FORWARDED_REQUEST) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const text = body.length > 0 ? body.toString('utf8') : undefined;
      const signed = await sign(target, method, headers, text);
      const upstream = await fetch(target, { method, headers: signed, redirect: 'manual', ...(text !== undefined ? { body: text } : {}) });
      status = upstream.status;
      const out: Record<string, string> = {};
      for (const name of FORWARDED_RESPONSE) {
        const v = upstream.headers.get(name);
        if (v !== null) out[name] = v;
      }
      const payload = Buffer.from(await upstream.arrayBuffer());
      res.writeHead(upstream.status, { ...out, 'Content-Length': String(payload.length) }).end(payload);
    } catch (err) {
      status = 502;
      const message = `the deployed API at ${base.href} could not be reached or the request could not be signed: ${err instanceof Error ? err.message : String(err)}`;
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: message }));
    } finally {
      options.log?.(`${method} ${req.url} -> ${status} (${Date.now() - started} ms)`);
    }
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
