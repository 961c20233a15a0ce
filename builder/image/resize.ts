import { truncate, stat } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { Resources } from '../resources.ts';
import { attachPartition } from './loop.ts';
import { type Partition, raspberryPiLayout, readPartitionTable } from './partitions.ts';

const MiB = 1024 * 1024;
const SECTORS_PER_MiB = MiB / 512;

/** e2fsck exits 0 (clean) or 1 (errors corrected); 4 and above mean the filesystem is still damaged. */
export async function checkFilesystem(device: string, log?: BuildLog): Promise<void> {
  const result = await run('e2fsck', ['-f', '-y', device], { log, allowFailure: true });
  if (result.exitCode > 1) {
    throw new UserError(`e2fsck found errors it could not correct on the root filesystem (exit ${result.exitCode}):\n${result.stdout.trim().split('\n').slice(-8).join('\n')}`);
  }
}

/** Run `fn` with partition 2 of `image` on its own loop device, released afterwards whatever happens. */
async function withRootDevice<T>(image: string, root: Partition, log: BuildLog | undefined, fn: (device: string) => Promise<T>): Promise<T> {
  const resources = new Resources(log);
  try {
    const loop = await attachPartition(image, root, resources, log);
    return await fn(loop.device);
  } finally {
    await resources.releaseAll();
  }
}

/** Make the image file `addMiB` larger and grow the root partition (the last one) and its filesystem into the space. */
export async function growRoot(image: string, addMiB: number, log?: BuildLog): Promise<void> {
  const size = (await stat(image)).size;
  await truncate(image, size + addMiB * MiB);
  const { root } = raspberryPiLayout(await readPartitionTable(image, log), image);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', '2', image], { log, input: `${root.start}, +\n`, what: 'grow the root partition' });
  const grown = raspberryPiLayout(await readPartitionTable(image, log), image).root;
  await withRootDevice(image, grown, log, async (device) => {
    await checkFilesystem(device, log);
    await run('resize2fs', [device], { log, what: 'grow the root filesystem' });
  });
}
