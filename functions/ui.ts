/**
 * Lambda entry of the web UI: `GET /ui/{proxy+}` and `GET /ui` (and `GET /`, a redirect) behind the API's IAM
 * authorization, serving the built files that the construct's bundling hook writes into `ui/`
 * beside this handler (`npm run build:ui -- --out <bundle>/ui`). SLUICE_UI_DIR overrides where.
 * The page calls the API relative to itself (`../jobs`), so it works under any stage prefix.
 */
import { fileURLToPath } from 'node:url';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { readUiAssets, serveUiAsset, type UiAssets } from '../lib/ui/serve';

let assets: Promise<UiAssets> | undefined;

function uiDir(): string {
  return process.env.SLUICE_UI_DIR?.trim() || fileURLToPath(new URL('./ui/', import.meta.url));
}

function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name && v !== undefined) return v;
  return undefined;
}

export async function serveUi(event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  try {
    assets ??= readUiAssets(uiDir());
    // `{proxy+}` is the file under /ui/. Without one it is /ui or /ui/ (the page itself); only the
    // request context's path (with the stage) still shows the trailing slash the page needs, so
    // that its relative URLs (app.js, ../jobs) resolve under /ui/.
    // `GET /` (when routed here) redirects to ui/.
    const proxy = event.pathParameters?.proxy;
    const path = event.resource === '/' || event.path === '/' ? '/' : proxy ? `/ui/${proxy}` : (event.requestContext?.path ?? event.path).endsWith('/') ? '/ui/' : '/ui';
    return serveUiAsset(await assets, event.httpMethod, path, header(event, 'if-none-match'));
  } catch (err) {
    assets = undefined;
    console.error(err);
    return { statusCode: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'the web UI is not available: its files are missing from this function (see the logs)' };
  }
}
