/**
 * The LocalStack lane (npm run test:localstack, localstack/test-lane.sh): the integration and
 * end-to-end suites against LocalStack at AWS_ENDPOINT_URL, with the settings of vitest.config.ts.
 * Left out by file: test/integration/lambda-handover.test.ts invokes functions through the Lambda
 * Invoke API, and LocalStack's Lambda runs functions only in Docker (CreateFunction leaves them in
 * State=Failed, Invoke is refused); npm test runs it against moto. test/integration/receipt-expiry.test.ts
 * holds SQS's expiring receipt handles, which LocalStack does not (ChangeMessageVisibility and a
 * delete with an old receipt after a new receive both succeed there). The Kinesis files: Kinesis is
 * not among the services the lane starts (localstack/host.sh; LocalStack serves it with kinesis-mock,
 * not tried in host mode yet). The Kafka file tests a Kafka broker, not AWS: npm test runs it.
 * See localstack/README.md.
 * One file at a time: LocalStack serves every request from one Python process, and two end-to-end
 * jobs at once on a loaded 2-core machine timed out their 10 s checkpoints there (each passes alone).
 */
import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config';

if (!process.env.AWS_ENDPOINT_URL?.trim()) {
  // Without it the global setup would start moto and this lane would test moto a second time.
  throw new Error('vitest.localstack.config.ts: AWS_ENDPOINT_URL is not set; run the lane with npm run test:localstack');
}

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    exclude: [
      ...configDefaults.exclude,
      'test/integration/lambda-handover.test.ts',
      'test/integration/receipt-expiry.test.ts',
      'test/integration/kinesis.test.ts',
      'test/e2e/kinesis-job.test.ts',
      'test/integration/kafka.test.ts',
    ],
    fileParallelism: false,
    maxWorkers: 1,
  },
});
