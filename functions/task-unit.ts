/**
 * Task unit entrypoint. As a child process (local runtime) or a Fargate task it reads its job,
 * unit and attempt from the environment; as a Lambda function, from the event.
 */
import { pathToFileURL } from 'node:url';
import { createAwsPorts, requestCounts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { JobStore } from '../lib/jobs/job-store';
import { hostUnit } from '../lib/runtime/unit-host';
import { jobRegistry } from '../examples/jobs';

export interface TaskUnitEvent {
  jobId: string;
  unitId: string;
  attempt: number;
}

export async function runUnit(event: TaskUnitEvent) {
  const config = loadConfig();
  const ports = createAwsPorts(config);
  try {
    return await hostUnit({
      ...event,
      queuePrefix: config.queuePrefix,
      channels: ports.channels,
      blobs: ports.blobs,
      metadata: ports.metadata,
      jobs: new JobStore(ports.metadata),
      registry: jobRegistry,
      requestCounts: () => ({ ...requestCounts() }),
      log: (line) => console.log(`[${event.unitId}#${event.attempt}] ${line}`),
    });
  } finally {
    ports.clients.destroy();
  }
}

export const handler = async (event: TaskUnitEvent) => ({ status: await runUnit(event) });

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { SLUICE_JOB_ID: jobId, SLUICE_UNIT_ID: unitId, SLUICE_ATTEMPT: attempt } = process.env;
  if (!jobId || !unitId) {
    console.error('task unit: set SLUICE_JOB_ID and SLUICE_UNIT_ID (and SLUICE_ATTEMPT)');
    process.exit(2);
  }
  runUnit({ jobId, unitId, attempt: Number(attempt ?? 0) }).then(
    (status) => {
      console.log(`unit ${unitId} ended: ${status}`);
      process.exit(status === 'FAILED' ? 1 : 0);
    },
    (error: unknown) => {
      console.error(`unit ${unitId} failed: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
