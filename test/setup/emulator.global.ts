/**
 * Vitest globalSetup: gives every test worker an AWS endpoint.
 * - AWS_ENDPOINT_URL set (LocalStack, a running emulator): used as is.
 * - otherwise: the embedded emulator (moto) is installed if needed and started here, once per run.
 * Workers are forked after this runs and inherit process.env, so loadConfig() in a test sees
 * AWS_ENDPOINT_URL; it is also provided as inject('awsEndpoint').
 */
import type { TestProject } from 'vitest/node';
import { resolveEndpoint } from '../../lib/local/emulator';

declare module 'vitest' {
  export interface ProvidedContext {
    awsEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const resolved = await resolveEndpoint();
  project.provide('awsEndpoint', resolved.endpoint);
  return () => resolved.stop();
}
