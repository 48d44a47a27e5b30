import { defineConfig } from 'vitest/config';

/**
 * `npm run test:kafka`: the Kafka-fed jobs end to end (a real broker on loopback, the emulator,
 * child-process task units, a unit killed). Heavier than `npm test`'s Kafka integration test, so
 * it has its own lane (CI runs it after `npm test`).
 */
export default defineConfig({
  test: {
    include: ['test/kafka/**/*.test.ts'],
    globalSetup: ['test/setup/emulator.global.ts'],
    reporters: ['default', './test/setup/summary-reporter.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
