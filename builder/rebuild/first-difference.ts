import { open } from 'node:fs/promises';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { fatTarget } from '../image/bootfs.ts';
import { ext4Target } from '../image/ext4.ts';
import { raspberryPiLayout, readPartitionTable } from '../image/partitions.ts';

/** Where two images part: the first differing byte, and how many blocks differ in all. */
export interface ImageDifference {
  /** The first byte that differs, or where the shorter image ends. */
  offset: number;
  differingBlocks: number;
  totalBlocks: number;
  sizes: [number, number];
}

const READ = 4 * 1024 * 1024;

/** Compare two image files block by block; undefined when they are the same bytes. */
export async function compareImages(a: string, b: string, blockSize = 4096): Promise<ImageDifference | undefined> {
  const [fa, fb] = [await open(a, 'r'), await open(b, 'r')];
  try {
    const sizes: [number, number] = [(await fa.stat()).size, (await fb.stat()).size];
    const [ba, bb] = [Buffer.alloc(READ), Buffer.alloc(READ)];
    let first: number | undefined;
    let differing = 0;
    const common = Math.min(...sizes);
    for (let at = 0; at < common; at += READ) {
      const length = Math.min(READ, common - at);
      await fa.read(ba, 0, length, at);
      await fb.read(bb, 0, length, at);
      if (ba.subarray(0, length).equals(bb.subarray(0, length))) continue;
      for (let block = 0; block < length; block += blockSize) {
        const end = Math.min(block + blockSize, length);
        const x = ba.subarray(block, end);
        const y = bb.subarray(block, end);
        if (x.equals(y)) continue;
        differing += 1;
        if (first === undefined) {
          let byte = 0;
          while (x[byte] === y[byte]) byte += 1;
          first = at + block + byte;
        }
      }
    }
    const totalBlocks = Math.ceil(Math.max(...sizes) / blockSize);
    differing += totalBlocks - Math.ceil(common / blockSize);
    if (first === undefined && sizes[0] !== sizes[1]) first = common;
    return first === undefined ? undefined : { offset: first, differingBlocks: differing, totalBlocks, sizes };
  } finally {
    await fa.close();
    await fb.close();
  }
}

/**
 * What is at byte `offset` of `image`, in words a person can act on: the partition table, a file of the boot
 * partition's area, or for the root filesystem the file that owns the block (debugfs icheck, then ncheck), else
 * "filesystem metadata".
 */
export async function describeOffset(image: string, offset: number, log?: BuildLog): Promise<string> {
  const { boot, root } = raspberryPiLayout(await readPartitionTable(image, log), image);
  const at = `byte ${offset}`;
  if (offset < boot.start * 512) return `${at}: the partition table (or the space before the boot partition)`;
  if (offset < (boot.start + boot.size) * 512) {
    const listing = await run('mdir', ['-/', '-a', '-i', fatTarget(image, boot), '::'], { log, allowFailure: true, env: { MTOOLS_SKIP_CHECK: '1' } });
    const files = listing.stdout.split('\n').filter((l) => /^\S/.test(l) && !/^(Directory|Volume)/.test(l)).length;
    return `${at}: partition ${boot.number}, the boot partition (FAT, ${files} entries), ${offset - boot.start * 512} bytes into it`;
  }
  if (offset >= root.start * 512 && offset < (root.start + root.size) * 512) {
    const target = ext4Target(image, root);
    const header = await run('dumpe2fs', ['-h', target], { log, allowFailure: true });
    const blockSize = Number(/^Block size:\s*(\d+)/m.exec(header.stdout)?.[1] ?? 4096);
    const block = Math.floor((offset - root.start * 512) / blockSize);
    const where = `${at}: partition ${root.number}, the root filesystem, block ${block}`;
    const icheck = await run('debugfs', ['-R', `icheck ${block}`, target], { log, allowFailure: true });
    const inode = new RegExp(`^${block}\\s+(\\d+)`, 'm').exec(icheck.stdout)?.[1];
    if (!inode) return `${where} (filesystem metadata: superblock, group descriptors, bitmaps, inode tables or journal)`;
    const ncheck = await run('debugfs', ['-R', `ncheck ${inode}`, target], { log, allowFailure: true });
    const path = new RegExp(`^${inode}\\s+(.+)$`, 'm').exec(ncheck.stdout)?.[1]?.trim();
    return `${where}, in ${path ?? `inode ${inode}`}`;
  }
  return `${at}: after the last partition`;
}
