/**
 * Builds the web UI: ui/src/main.ts bundled by esbuild (a devDependency, loaded only here) into
 * one app.js, beside ui/index.html, ui/style.css and ui/favicon.svg. The dev server builds it in
 * memory at start (nothing built is committed); `npm run build:ui -- --out DIR` writes the files
 * for a deployment (the construct's bundling hook puts them beside the serveUi handler).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/package-root';
import { UI_FILES, uiAsset, type UiAsset, type UiAssets } from './serve';

/** The UI's sources: in the checkout, or shipped beside dist/ in an installed package. */
export const UI_SOURCE_DIR = join(PACKAGE_ROOT, 'ui');

export async function buildUiAssets(sourceDir = UI_SOURCE_DIR): Promise<UiAssets> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [join(sourceDir, 'src', 'main.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    target: 'es2022',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = result.outputFiles[0];
  if (!js) throw new Error('web UI: esbuild produced no output');
  const out = new Map<string, UiAsset>();
  for (const name of UI_FILES) out.set(name, name === 'app.js' ? uiAsset(name, Buffer.from(js.contents)) : uiAsset(name, await readFile(join(sourceDir, name))));
  return out;
}

/** Builds the UI and writes its files to `dir` (created if missing); returns their names. */
export async function writeUiAssets(dir: string, sourceDir = UI_SOURCE_DIR): Promise<string[]> {
  const assets = await buildUiAssets(sourceDir);
  await mkdir(dir, { recursive: true });
  for (const [name, a] of assets) await writeFile(join(dir, name), a.body);
  return [...assets.keys()];
}
