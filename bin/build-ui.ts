/**
 * Writes the built web UI to a directory, for a deployment: the construct's bundling hook runs it
 * to put the files beside the serveUi handler (functions/ui.ts). `npm run dev` needs none of this
 * (it builds the UI in memory).
 *
 *   npm run build:ui -- --out DIR
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeUiAssets } from '../lib/ui/build';

const USAGE = 'usage: npm run build:ui -- --out DIR';
let out: string | undefined;
try {
  out = parseArgs({ options: { out: { type: 'string' } }, strict: true }).values.out;
} catch (err) {
  console.error(`build-ui: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
if (!out) {
  console.error(`build-ui: --out is required\n${USAGE}`);
  process.exit(2);
}
const dir = resolve(out);
try {
  const files = await writeUiAssets(dir);
  console.log(`web UI written to ${dir}: ${files.join(', ')}`);
} catch (err) {
  console.error(`build-ui: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
