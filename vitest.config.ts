import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    setupFiles: ['test/helpers/cleanup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // One file at a time unless told otherwise: the integration tests share loop devices, the build cache and the
    // output directories, and some check that nothing is left mounted in the cache. (vitest 3 sizes one pool for
    // every project, so a project cannot ask for its own; ci/test.sh runs the two projects one after the other.)
    fileParallelism: false,
    projects: [
      {
        // The VM tests (qemu-system). ci/test.sh runs both files at once (--fileParallelism --maxWorkers 2): much of
        // their time is an emulated Pi booting or waiting on Tor, which the other file's work fills. They share
        // only the build cache, whose layers and work directories are per key and per build.
        extends: true,
        test: { name: 'vm', include: ['test/e2e/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'host', include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'] },
      },
    ],
  },
});
