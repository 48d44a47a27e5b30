import { defineConfig } from 'vitest/config';

/** `npm run test:package`: the packed package in a scratch project (test/package/), apart from `npm test` (slow). */
export default defineConfig({
  test: {
    include: ['test/package/**/*.test.ts'],
    globalSetup: ['test/setup/emulator.global.ts'],
    reporters: ['default', './test/setup/summary-reporter.ts'],
    testTimeout: 300_000,
    hookTimeout: 600_000,
    pool: 'forks',
  },
});
