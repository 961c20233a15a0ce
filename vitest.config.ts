import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    setupFiles: ['test/helpers/cleanup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // The default is one worker fewer than the cores: one, on the 2-core machines this runs on. The VM group uses
    // two; the host group limits itself to one (fileParallelism).
    maxWorkers: 2,
    projects: [
      {
        // The VM tests (qemu-system) first, both files at once: much of their time is spent waiting on an emulated
        // Pi (a boot, Tor, the watchdog's rounds), which the other file's work fills. They share only the build
        // cache, whose layers and work directories are per key and per build.
        extends: true,
        test: { name: 'vm', include: ['test/e2e/**/*.test.ts'], sequence: { groupOrder: 0 } },
      },
      {
        // Then everything else, one file at a time: the integration tests share loop devices, the build cache
        // and the output directories, and some check that nothing is left mounted in the cache.
        extends: true,
        test: { name: 'host', include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
