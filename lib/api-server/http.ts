/**
 * A plain node:http server that turns each request into an API Gateway REST proxy event, calls a
 * handler with it (the same handlers as the Lambda functions) and writes the proxy result back.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';

export type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

/** Largest request body accepted (API Gateway's limit is 10 MB; job submissions are small). */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * How much of an oversized body is still read (and dropped) so the client can read the 413: a
 * server that closes a socket with unread input resets it, and the client loses the answer while it
 * is still writing. Past this the connection is cut.
 */
export const MAX_DRAINED_BYTES = 16 * MAX_BODY_BYTES;

const TOO_LARGE = Symbol('too large');

/** readBody cut the connection of a body past MAX_DRAINED_BYTES (nothing to answer, nothing to log). */
class ConnectionCut extends Error {}

const tooLargeResult = (): APIGatewayProxyResult =>
  jsonResult(413, { error: `the request body is larger than ${MAX_BODY_BYTES} bytes`, field: 'body' });

/** The body, or TOO_LARGE once it has been read to its end (or cut at MAX_DRAINED_BYTES: rejects). */
function readBody(req: IncomingMessage): Promise<Buffer | typeof TOO_LARGE> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES + MAX_DRAINED_BYTES) {
        req.destroy();
        reject(new ConnectionCut());
      } else if (size > MAX_BODY_BYTES) chunks = [];
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? TOO_LARGE : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The proxy event API Gateway would send for this request (REST API, Lambda proxy integration). */
export function toProxyEvent(req: IncomingMessage, body: Buffer, stage = 'local'): APIGatewayProxyEvent {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    headers[name] = value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) {
    query[k] = v;
    (multiQuery[k] ??= []).push(v);
  }
  const hasQuery = Object.keys(query).length > 0;
  const method = (req.method ?? 'GET').toUpperCase();
  const now = Date.now();
  return {
    httpMethod: method,
    path: url.pathname,
    resource: url.pathname,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: null,
    stageVariables: null,
    body: body.length > 0 ? body.toString('utf8') : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      authorizer: null,
      httpMethod: method,
      path: `/${stage}${url.pathname}`,
      protocol: `HTTP/${req.httpVersion}`,
      requestId: randomUUID(),
      requestTimeEpoch: now,
      resourceId: 'local',
      resourcePath: url.pathname,
      stage,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        user: null,
        userAgent: req.headers['user-agent'] ?? null,
        userArn: null,
      },
    },
  };
}

function localContext(requestId: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'sluice-api-local',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:sluice-api-local',
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: 'local',
    logStreamName: 'local',
    // No getRemainingTimeInMillis: middy's early timeout stays off locally.
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  } as unknown as Context;
}

function send(res: ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
  for (const [k, v] of Object.entries(result.multiValueHeaders ?? {})) headers[k] = v.map(String);
  const body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
  headers['Content-Length'] = String(body.length);
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

const jsonResult = (statusCode: number, body: unknown): APIGatewayProxyResult => ({
  statusCode,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(body),
});

export interface ProxyServer {
  server: Server;
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  close(): Promise<void>;
}

/** Serves `handler` on host:port (port 0: a free one). */
export async function serveProxy(handler: ProxyHandler, options: { port?: number; host?: string; log?: (line: string) => void } = {}): Promise<ProxyServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer(async (req, res) => {
    const started = Date.now();
    let result: APIGatewayProxyResult;
    try {
      const body = await readBody(req);
      if (body === TOO_LARGE) result = tooLargeResult();
      else {
        const event = toProxyEvent(req, body);
        result = await handler(event, localContext(event.requestContext.requestId));
      }
    } catch (err) {
      result = jsonResult(500, { error: 'internal error' });
      if (!(err instanceof ConnectionCut)) console.error(err);
    }
    if (!res.destroyed) send(res, result);
    options.log?.(`${req.method} ${req.url} -> ${res.destroyed && !res.writableFinished ? 'connection closed' : result.statusCode} (${Date.now() - started} ms)`);
  });
  // A client that waits for 100-continue is told at once when the declared body is too large, and
  // never sends it; others get their 100 Continue as Node would send it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length']) > MAX_BODY_BYTES) {
      send(res, { ...tooLargeResult(), headers: { 'Content-Type': 'application/json', Connection: 'close' } });
      options.log?.(`${req.method} ${req.url} -> 413 (before 100-continue)`);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    server,
    url: `http://${shownHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
