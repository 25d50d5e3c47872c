import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/watch-output.ts'],
    env: { POWERTOOLS_DEV: 'false', POWERTOOLS_LOG_LEVEL: 'INFO' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
    pool: 'forks',
    // Two files at a time on two cores: no test depends on the machine being idle.
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.reports/vitest.json' }]],
  },
});
