import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['test/**/*.test.ts'], exclude: ['test/package/**', 'test/kafka/**', '**/node_modules/**'], testTimeout: 120_000 } });
