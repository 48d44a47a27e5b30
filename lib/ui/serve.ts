/**
 * Serving the web UI's files at /ui/, from memory: a request can only name one of the built files,
 * never a path on disk. The local API server serves what lib/ui/build.ts bundles at start; the
 * `serveUi` Lambda handler (functions/ui.ts) what the construct's bundling put beside it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { APIGatewayProxyResult } from 'aws-lambda';

export interface UiAsset {
  body: Buffer;
  contentType: string;
  etag: string;
}

/** File name (no directories) -> asset. */
export type UiAssets = ReadonlyMap<string, UiAsset>;

/** The files of the built UI: ui/index.html, ui/style.css, ui/favicon.svg and ui/src bundled into app.js. */
export const UI_FILES = ['index.html', 'style.css', 'app.js', 'favicon.svg'] as const;

const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
};

export function uiAsset(name: string, body: Buffer): UiAsset {
  const ext = name.slice(name.lastIndexOf('.') + 1);
  const contentType = CONTENT_TYPES[ext];
  if (!contentType) throw new Error(`web UI: no content type for '${name}'`);
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** Loads the built UI from a directory (npm run build:ui writes one); says which file is missing. */
export async function readUiAssets(dir: string): Promise<UiAssets> {
  const out = new Map<string, UiAsset>();
  for (const name of UI_FILES) {
    let body: Buffer;
    try {
      body = await readFile(join(dir, name));
    } catch (err) {
      throw new Error(`web UI: ${join(dir, name)} is missing (npm run build:ui -- --out <dir> writes the UI): ${(err as Error).message}`);
    }
    out.set(name, uiAsset(name, body));
  }
  return out;
}

/** Whether a request path is the UI's: `/`, `/ui`, `/ui/...`. */
export function isUiPath(path: string): boolean {
  return path === '/' || path === '/ui' || path.startsWith('/ui/');
}

const SECURITY_HEADERS = {
  // Everything the page loads or calls is its own origin; no inline script or style.
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

const text = (statusCode: number, body: string, headers: Record<string, string> = {}): APIGatewayProxyResult => ({
  statusCode,
  headers: { 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS, ...headers },
  body,
});

/**
 * The response for a UI path (see isUiPath): a file, 304 when the client has it, or a redirect of
 * `/` and `/ui` to `ui/` (relative, so it keeps an API Gateway stage prefix such as /prod).
 */
export function serveUiAsset(assets: UiAssets, method: string, path: string, ifNoneMatch?: string): APIGatewayProxyResult {
  const m = method.toUpperCase();
  if (m !== 'GET' && m !== 'HEAD') return text(405, `${method} is not allowed on ${path}; use GET`, { Allow: 'GET, HEAD' });
  if (path === '/' || path === '/ui') return { statusCode: 302, headers: { Location: 'ui/', 'Cache-Control': 'no-cache' }, body: '' };
  const name = path.slice('/ui/'.length) || 'index.html';
  const file = assets.get(name);
  if (!file) return text(404, `no such file in the web UI: ${name}`);
  // Revalidated on every load (ETag), so a rebuilt UI is picked up at once.
  const headers = { 'Content-Type': file.contentType, 'Cache-Control': 'no-cache', ETag: file.etag, ...SECURITY_HEADERS };
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((t) => t.trim() === file.etag)) return { statusCode: 304, headers, body: '' };
  return { statusCode: 200, headers, body: m === 'HEAD' ? '' : file.body.toString('utf8') };
}
