/**
 * The user's jobs module in a Lambda bundle built by the Sluice construct: esbuild aliases this
 * specifier to the module's file (infra/constructs/functions.ts). Never resolved outside a bundle.
 */
declare module 'sluice-bundled-jobs' {
  const jobs: Record<string, unknown>;
  export = jobs;
}
