import type { BuildLog } from '../log.ts';
import { ext4Target } from './ext4.ts';
import { mergeRanges } from '../block-ranges.ts';
import { type BlockRanges, readExt4Usage } from './ext4-usage.ts';
import { raspberryPiLayout, readPartitionTable } from './partitions.ts';

/**
 * The blocks of a finished image that hold anything, in `blockSize` units, for its `.bmap`: everything before the
 * root partition (the partition table and the whole boot partition, small), and the blocks the root filesystem's
 * own bitmaps mark used. Everything else is free space, all zeros, since the root filesystem is made anew into a
 * zeroed file (recreate-root.ts). Read from the filesystem, not from the image file's holes, so the map is the same
 * on every host whatever its filesystem makes sparse.
 */
export async function mappedBlocks(image: string, blockSize: number, log?: BuildLog): Promise<BlockRanges> {
  const { root } = raspberryPiLayout(await readPartitionTable(image, log), image);
  const usage = await readExt4Usage(ext4Target(image, root), log);
  const rootStart = root.start * 512;
  const ranges: BlockRanges = [{ first: 0, last: Math.ceil(rootStart / blockSize) - 1 }];
  for (const { first, last } of usage.usedBlocks) {
    const from = rootStart + first * usage.blockSize;
    const to = rootStart + (last + 1) * usage.blockSize; // exclusive
    ranges.push({ first: Math.floor(from / blockSize), last: Math.ceil(to / blockSize) - 1 });
  }
  return mergeRanges(ranges);
}
