import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The VM files first, whatever vitest's own order (the longest last time, or the largest file): each takes a worker
 * at once, and the other files fill the worker the shorter one leaves. Otherwise one VM file waited behind them.
 */
class VmFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    return [...sorted.filter((f) => f.project.name === 'vm'), ...sorted.filter((f) => f.project.name !== 'vm')];
  }
}

/**
 * Test files that touch neither the build cache's layers nor loop devices nor a shared output directory (they render,
 * sign, start tors in a namespace of their own, read packages): ci/test.sh runs them in the VM run, on the worker the
 * shorter VM file leaves idle once it has finished. Everything else stays one file at a time after it. One exception
 * builds: `reproducible` (four builds, about six minutes). By the time the shorter VM file leaves its worker, the
 * other has long built its image, so the Debian base and packages layer are there to share, and nothing in the VM
 * files counts what is mounted under the cache (build and interrupt do, and run after).
 */
const besideVms = [
  'test/unit/**/*.test.ts',
  ...['signatures', 'tor-network', 'render', 'firewall', 'standin-contract', 'security-updates', 'redact-passwords', 'torn-record', 'settle-tree', 'xftp-password', 'cloud-init-config', 'release', 'device-config', 'device-status', 'recipes', 'chroot-offline', 'xz-chunks', 'reproducible'].map(
    (name) => `test/integration/${name}.test.ts`,
  ),
];

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
    sequence: { sequencer: VmFilesFirst },
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
        test: { name: 'beside-vms', include: besideVms },
      },
      {
        extends: true,
        test: { name: 'host', include: ['test/integration/**/*.test.ts'], exclude: besideVms },
      },
    ],
  },
});
