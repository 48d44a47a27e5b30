/**
 * The signing proxy in front of a deployed API: the browser's requests go to the API under its
 * stage, signed with SigV4 (the default credential chain, here from the environment), and the
 * answers come back as they were.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSigningProxy, type SigningProxy } from '../../../lib/ui/signing-proxy';

const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
let upstream: Server;
let upstreamUrl: string;
let proxy: SigningProxy;
const savedEnv = { ...process.env };

beforeAll(async () => {
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', AWS_REGION: 'eu-west-1' });
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url === '/prod/ui') return void res.writeHead(302, { Location: 'ui/' }).end();
      if (req.url === '/prod/ui/') return void res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', ETag: '"abc"', 'X-Other': 'dropped' }).end('<!doctype html>');
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ echoed: body ? JSON.parse(body) : null }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  proxy = await startSigningProxy({ api: `${upstreamUrl}/prod/` });
});

afterAll(async () => {
  await proxy?.close();
  await new Promise<void>((r) => upstream.close(() => r()));
  process.env = savedEnv;
});

describe('signing proxy for the web UI of a deployed API', () => {
  it('forwards the UI and API calls under the stage, signed with SigV4, and passes the answers back', async () => {
    const page = await fetch(`${proxy.url}/ui/`, { headers: { Accept: 'text/html', Cookie: 'not-forwarded=1' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('<!doctype html>');
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('etag')).toBe('"abc"');
    expect(page.headers.get('x-other')).toBeNull();
    const get = seen.at(-1)!;
    expect(get).toMatchObject({ method: 'GET', url: '/prod/ui/' });
    expect(get.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/);
    expect(get.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(get.headers.cookie).toBeUndefined();

    const redirect = await fetch(`${proxy.url}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('ui/');

    const submitted = await fetch(`${proxy.url}/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ job: 'demo' }) });
    expect(submitted.status).toBe(201);
    expect(await submitted.json()).toEqual({ echoed: { job: 'demo' } });
    const post = seen.at(-1)!;
    expect(post).toMatchObject({ method: 'POST', url: '/prod/jobs', body: '{"job":"demo"}' });
    expect(post.headers['content-type']).toBe('application/json');
    expect(post.headers.authorization).toMatch(/SignedHeaders=[a-z0-9;-]*content-type/);
  });

  it('answers 502 naming the API when it cannot be reached, and refuses a URL that is not one', async () => {
    const dead = await startSigningProxy({ api: 'http://127.0.0.1:9/prod' });
    try {
      const res = await fetch(`${dead.url}/jobs`);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: string }).error).toMatch(/^the deployed API at http:\/\/127\.0\.0\.1:9\/prod could not be reached/);
    } finally {
      await dead.close();
    }
    await expect(startSigningProxy({ api: 'not a url' })).rejects.toThrow(/--api must be the API's URL/);
    await expect(startSigningProxy({ api: 'ftp://x/prod' })).rejects.toThrow(/--api must be an http\(s\) URL/);
  });
});
