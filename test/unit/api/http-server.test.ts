/**
 * The local HTTP server (lib/api-server/http.ts) with a recording handler: no AWS, no task units.
 * An oversized body must be answered with a 413 the client can read, however it sends the body.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { MAX_BODY_BYTES, MAX_DRAINED_BYTES, serveProxy, type ProxyServer } from '../../../lib/api-server/http';

let server: ProxyServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function recordingServer() {
  const seen: APIGatewayProxyEvent[] = [];
  server = await serveProxy(async (event) => {
    seen.push(event);
    return { statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ bytes: event.body?.length ?? 0 }) };
  });
  return { url: server.url, seen };
}

/** A JSON body of exactly `bytes` bytes. */
const jsonOf = (bytes: number) => `{"pad":"${'x'.repeat(bytes - 10)}"}`;

/** A raw node:http request: `chunks` written one by one, optionally waiting for 100-continue first. */
function rawPost(url: string, chunks: Buffer[], headers: Record<string, string>): Promise<{ status: number; body: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = request(`${url}/jobs`, { method: 'POST', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), continued }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const send = () => {
      for (const c of chunks) req.write(c);
      req.end();
    };
    if (headers.Expect === '100-continue') {
      req.on('continue', () => {
        continued = true;
        send();
      });
    } else send();
  });
}

describe('local API server: request bodies', () => {
  it('passes a body at the limit to the handler', async () => {
    const { url, seen } = await recordingServer();
    const res = await fetch(`${url}/jobs`, { method: 'POST', body: jsonOf(MAX_BODY_BYTES), headers: { 'Content-Type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: MAX_BODY_BYTES });
    expect(seen).toHaveLength(1);
  });

  it('answers a body over the limit with a 413 that fetch can read, and keeps serving', async () => {
    const { url, seen } = await recordingServer();
    const res = await fetch(`${url}/jobs`, { method: 'POST', body: jsonOf(MAX_BODY_BYTES + 1), headers: { 'Content-Type': 'application/json' } });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ error: `the request body is larger than ${MAX_BODY_BYTES} bytes`, field: 'body' });
    expect(seen).toEqual([]);
    expect((await fetch(`${url}/jobs`)).status).toBe(200);
  });

  it('answers a chunked upload over the limit with a 413 (no Content-Length to go by)', async () => {
    const { url, seen } = await recordingServer();
    const chunk = Buffer.alloc(256 * 1024, 'x');
    const res = await rawPost(url, Array.from({ length: 12 }, () => chunk), { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ field: 'body' });
    expect(seen).toEqual([]);
  });

  it('refuses a declared oversized body before it is sent when the client waits for 100-continue', async () => {
    const { url, seen } = await recordingServer();
    const body = Buffer.from(jsonOf(MAX_BODY_BYTES * 2));
    const res = await rawPost(url, [body], { 'Content-Type': 'application/json', 'Content-Length': String(body.length), Expect: '100-continue' });
    expect(res).toMatchObject({ status: 413, continued: false });
    expect(JSON.parse(res.body)).toMatchObject({ field: 'body' });
    expect(seen).toEqual([]);
    // A body within the limit gets its 100 Continue and reaches the handler.
    const small = Buffer.from(jsonOf(100));
    const ok = await rawPost(url, [small], { 'Content-Type': 'application/json', 'Content-Length': String(small.length), Expect: '100-continue' });
    expect(ok).toMatchObject({ status: 200, continued: true });
    expect(seen).toHaveLength(1);
  });

  it('cuts the connection of a body that goes on past what it is willing to drain, and keeps serving', async () => {
    const { url, seen } = await recordingServer();
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    const chunks = Array.from({ length: (MAX_BODY_BYTES + MAX_DRAINED_BYTES) / chunk.length + 2 }, () => chunk);
    await expect(rawPost(url, chunks, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' })).rejects.toThrow(/ECONNRESET|EPIPE|socket hang up/);
    expect(seen).toEqual([]);
    expect((await fetch(`${url}/jobs`)).status).toBe(200);
  });

  it('answers a handler that throws with 500 and logs the error', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      server = await serveProxy(async () => {
        throw new Error('handler broke');
      });
      const res = await fetch(`${server.url}/jobs`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: 'internal error' });
      expect(logged.mock.calls.map((c) => String(c[0]))).toContain('Error: handler broke');
    } finally {
      logged.mockRestore();
    }
  });
});
