/**
 * Lambda entry of the job API: one exported handler per route (see routes.ts), each a middy
 * handler over the AWS services (cloud.ts), built once per container on first use (the jobs too).
 */
import { loadJobRegistry } from '../../lib/api/jobs-module';
import { loadConfig } from '../../lib/config';
import { createCloudApiServices } from './cloud';
import { createApiHandlers } from './handlers';
import { lambdaTelemetry } from '../../lib/observability/lambda';

const handlers = createApiHandlers(async () => createCloudApiServices(loadConfig(), process.env, await loadJobRegistry(), lambdaTelemetry()), lambdaTelemetry());

export const submitJob = handlers.submitJob;
export const listJobs = handlers.listJobs;
export const getJob = handlers.getJob;
export const cancelJob = handlers.cancelJob;
export const triggerCheckpoint = handlers.triggerCheckpoint;
export const listCheckpoints = handlers.listCheckpoints;
export const putSchedule = handlers.putSchedule;
