/**
 * The web UI's files: built from ui/ with esbuild, served at /ui/ by the local API server and by
 * the serveUi Lambda handler (from the directory the construct's bundling fills), nothing else.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveUi } from '../../../functions/ui';
import { buildUiAssets, writeUiAssets } from '../../../lib/ui/build';
import { isUiPath, readUiAssets, serveUiAsset, UI_FILES, type UiAssets } from '../../../lib/ui/serve';
import { apiEvent } from '../api/helpers';

let assets: UiAssets;
let dir: string;

beforeAll(async () => {
  assets = await buildUiAssets();
  dir = mkdtempSync(join(tmpdir(), 'sluice-ui-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('web UI files', () => {
  it('builds one script beside the page, the stylesheet and the icon', () => {
    expect([...assets.keys()].sort()).toEqual([...UI_FILES].sort());
    const html = assets.get('index.html')!.body.toString('utf8');
    expect(html).toContain('<script type="module" src="app.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="style.css">');
    const js = assets.get('app.js')!.body.toString('utf8');
    // Bundled: no import left for the browser to resolve, and it calls the API relative to the page.
    expect(js).not.toMatch(/^\s*import\s/m);
    expect(js).toContain("new URL(\"../\", document.baseURI)");
    expect(assets.get('app.js')!.contentType).toBe('text/javascript; charset=utf-8');
  });

  it('serves the files at /ui/, redirects / and /ui to ui/, answers 304 to a known ETag and 404 to anything else', () => {
    for (const path of ['/', '/ui', '/ui/', '/ui/app.js', '/ui/style.css']) expect(isUiPath(path)).toBe(true);
    for (const path of ['/jobs', '/jobs/x', '/uix', '/u']) expect(isUiPath(path)).toBe(false);

    expect(serveUiAsset(assets, 'GET', '/')).toMatchObject({ statusCode: 302, headers: { Location: 'ui/' } });
    expect(serveUiAsset(assets, 'GET', '/ui')).toMatchObject({ statusCode: 302, headers: { Location: 'ui/' } });
    const page = serveUiAsset(assets, 'GET', '/ui/');
    expect(page).toMatchObject({ statusCode: 200, headers: { 'Content-Type': 'text/html; charset=utf-8', 'X-Content-Type-Options': 'nosniff' } });
    expect(page.body).toBe(assets.get('index.html')!.body.toString('utf8'));
    expect(String(page.headers!['Content-Security-Policy'])).toMatch(/script-src 'self';/);
    const etag = String(page.headers!.ETag);
    expect(serveUiAsset(assets, 'GET', '/ui/index.html', etag)).toMatchObject({ statusCode: 304, body: '' });
    expect(serveUiAsset(assets, 'GET', '/ui/index.html', '"other"').statusCode).toBe(200);
    expect(serveUiAsset(assets, 'HEAD', '/ui/app.js')).toMatchObject({ statusCode: 200, body: '' });
    expect(serveUiAsset(assets, 'GET', '/ui/../package.json')).toMatchObject({ statusCode: 404, body: 'no such file in the web UI: ../package.json' });
    expect(serveUiAsset(assets, 'GET', '/ui/src/main.ts').statusCode).toBe(404);
    expect(serveUiAsset(assets, 'POST', '/ui/')).toMatchObject({ statusCode: 405, headers: { Allow: 'GET, HEAD' } });
  });

  it('the Lambda handler serves what npm run build:ui wrote, under /ui/{proxy+}', async () => {
    const written = await writeUiAssets(dir);
    expect(written.sort()).toEqual([...UI_FILES].sort());
    expect(readdirSync(dir).sort()).toEqual([...UI_FILES].sort());
    const read = await readUiAssets(dir);
    expect(read.get('app.js')!.etag).toBe(assets.get('app.js')!.etag);

    process.env.SLUICE_UI_DIR = dir;
    try {
      const file = await serveUi({ ...apiEvent('GET', '/ui/style.css'), resource: '/ui/{proxy+}', pathParameters: { proxy: 'style.css' } });
      expect(file).toMatchObject({ statusCode: 200, headers: { 'Content-Type': 'text/css; charset=utf-8' } });
      // GET /ui without the slash is redirected (relative, keeping the stage); with it, it is the page.
      const stage = (path: string) => ({ ...apiEvent('GET', '/ui'), resource: '/ui', requestContext: { path } as never });
      expect(await serveUi(stage('/prod/ui'))).toMatchObject({ statusCode: 302, headers: { Location: 'ui/' } });
      expect(await serveUi(stage('/prod/ui/'))).toMatchObject({ statusCode: 200, headers: { 'Content-Type': 'text/html; charset=utf-8' } });
      expect(await serveUi({ ...apiEvent('GET', '/'), resource: '/', requestContext: { path: '/prod/' } as never })).toMatchObject({ statusCode: 302, headers: { Location: 'ui/' } });
    } finally {
      delete process.env.SLUICE_UI_DIR;
    }
  });

  it('names the missing file when the UI was not built', async () => {
    await expect(readUiAssets(join(dir, 'nothing-here'))).rejects.toThrow(/nothing-here\/index\.html is missing \(npm run build:ui/);
  });
});
