import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The packed package in a scratch project: `npm run test:package` (vitest.package.config.ts);
    // the Kafka-fed jobs end to end: `npm run test:kafka` (vitest.kafka.config.ts).
    exclude: ['test/package/**', 'test/kafka/**', '**/node_modules/**'],
    globalSetup: ['test/setup/emulator.global.ts'],
    reporters: ['default', './test/setup/summary-reporter.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
