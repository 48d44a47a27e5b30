/**
 * Module aliases of every esbuild bundle (the local units' and the construct's Lambda functions).
 * The Kafka client's WebAssembly helpers read `../dist/native.wasm` next to their own module, a
 * file no bundle carries; their `bundled` entry has it inlined, with the same API.
 */
export const BUNDLE_ALIASES: Readonly<Record<string, string>> = { '@platformatic/wasm-utils': '@platformatic/wasm-utils/bundled' };

/** The same aliases as esbuild command-line arguments (CDK's `bundling.esbuildArgs`). */
export const BUNDLE_ALIAS_ARGS: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(BUNDLE_ALIASES).map(([from, to]) => [`--alias:${from}`, to]));
