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

export function parseMinimumBlocks(text: string): number {
  const match = /Estimated minimum size of the filesystem:\s*(\d+)/.exec(text);
  if (!match) throw new UserError(`resize2fs -P printed no minimum size:\n${text.trim()}`);
  return Number(match[1]);
}

export function parseBlockSize(text: string): number {
  const match = /^Block size:\s*(\d+)/m.exec(text);
  if (!match) throw new UserError('dumpe2fs printed no block size');
  return Number(match[1]);
}

/** Content + margin, rounded up to whole MiB: what the shrunk root filesystem is sized to. */
export function shrunkRootMiB(minimumBytes: number, marginMiB: number): number {
  return Math.ceil((minimumBytes * 1.05) / MiB) + marginMiB;
}

/**
 * Shrink the root filesystem to its content plus `marginMiB`, the partition to match, and cut the image file
 * after it. Free blocks are zeroed so the image compresses well. The card is filled again on first boot by the
 * base's own mechanism (Raspberry Pi OS) or simplex-pi-growroot (Debian base).
 */
export async function shrinkRoot(image: string, marginMiB: number, log?: BuildLog): Promise<{ rootMiB: number }> {
  const { root } = raspberryPiLayout(await readPartitionTable(image, log), image);
  const rootMiB = await withRootDevice(image, root, log, async (device) => {
    await checkFilesystem(device, log);
    const blockSize = parseBlockSize((await run('dumpe2fs', ['-h', device], { log, what: 'read the root filesystem' })).stdout);
    const minimum = parseMinimumBlocks((await run('resize2fs', ['-P', device], { log, what: 'measure the root filesystem' })).stdout);
    const target = shrunkRootMiB(minimum * blockSize, marginMiB);
    const shrink = target * SECTORS_PER_MiB < root.size;
    if (shrink) await run('resize2fs', [device, `${target}M`], { log, what: 'shrink the root filesystem' });
    await run('zerofree', [device], { log, what: 'zero the free blocks of the root filesystem' });
    return shrink ? target : undefined;
  });
  const sectors = rootMiB === undefined ? root.size : rootMiB * SECTORS_PER_MiB;
  if (rootMiB !== undefined) {
    await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', '2', image], { log, input: `${root.start}, ${sectors}\n`, what: 'shrink the root partition' });
  }
  await truncate(image, (root.start + sectors) * 512);
  return { rootMiB: (sectors * 512) / MiB };
}
