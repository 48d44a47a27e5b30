/**
 * Vitest globalSetup: gives every test worker an AWS endpoint.
 * - AWS_ENDPOINT_URL set (LocalStack, a running emulator): used as is.
 * - otherwise: the embedded emulator (moto) is installed if needed and started here, once per run.
 * Also builds the bundled task unit the local runtime's units run (lib/local/unit-bundle.ts).
 * Workers are forked after this runs and inherit process.env, so loadConfig() in a test sees
 * AWS_ENDPOINT_URL; it is also provided as inject('awsEndpoint').
 */
import type { TestProject } from 'vitest/node';
import { resolveEndpoint } from '../../lib/local/emulator';
import { TASK_UNIT_ENTRY } from '../../lib/local/process-launcher';
import { ensureBundle } from '../../lib/local/unit-bundle';

declare module 'vitest' {
  export interface ProvidedContext {
    awsEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The task unit bundle is built (or found current) once here, while the emulator starts, not by
  // the first test workers that start units (they would wait on each other's build).
  const [resolved] = await Promise.all([resolveEndpoint(), ensureBundle(TASK_UNIT_ENTRY)]);
  project.provide('awsEndpoint', resolved.endpoint);
  return () => resolved.stop();
}
