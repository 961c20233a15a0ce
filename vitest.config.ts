import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/cleanup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests share loop devices, the build cache and the output directories: one file at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
