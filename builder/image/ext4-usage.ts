import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { type BlockRange, mergeRanges } from '../block-ranges.ts';

/**
 * Which blocks and inodes of an ext4 filesystem are in use, from its own bitmaps as `dumpe2fs` prints them. Used for
 * the blocks a `.bmap` maps (outputs/bmap.ts: the rest is free space, all zeros in a fresh filesystem) and for the
 * inodes whose change time recreate-root.ts sets.
 */

/** Inclusive ranges, in order. */
export type BlockRanges = BlockRange[];

export interface Ext4Usage {
  blockSize: number;
  usedBlocks: BlockRanges;
  usedInodes: BlockRanges;
}

/** "12-40, 77, 90-91" (or nothing) as ranges. */
export function parseRangeList(text: string): BlockRanges {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [first, last = first] = part.split('-').map(Number);
      return { first: first!, last: last! };
    });
}

/** The ranges of [first, last] not in `free` (which is sorted and inside it). */
export function complement(first: number, last: number, free: BlockRanges): BlockRanges {
  const used: BlockRanges = [];
  let next = first;
  for (const range of free) {
    if (range.first > next) used.push({ first: next, last: range.first - 1 });
    next = Math.max(next, range.last + 1);
  }
  if (next <= last) used.push({ first: next, last });
  return used;
}

/** Parse the full `dumpe2fs` output (header and every group). */
export function parseExt4Usage(dumpe2fs: string): Ext4Usage {
  const header = (name: string) => {
    const value = Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(dumpe2fs)?.[1]);
    if (!Number.isFinite(value)) throw new UserError(`dumpe2fs printed no "${name}"; is this an ext4 filesystem?`);
    return value;
  };
  const blockSize = header('Block size');
  const inodesPerGroup = header('Inodes per group');
  const usedBlocks: BlockRanges = [];
  const usedInodes: BlockRanges = [];
  const groups = dumpe2fs.split(/^(?=Group \d+: )/m).slice(1);
  if (!groups.length) throw new UserError('dumpe2fs printed no block groups');
  for (const group of groups) {
    const head = /^Group (\d+): \(Blocks (\d+)-(\d+)\)/.exec(group);
    const freeBlocks = /^\s+Free blocks:(.*)$/m.exec(group);
    const freeInodes = /^\s+Free inodes:(.*)$/m.exec(group);
    if (!head || !freeBlocks || !freeInodes) throw new UserError(`dumpe2fs printed a block group it could not be read from:\n${group.slice(0, 200)}`);
    const number = Number(head[1]);
    usedBlocks.push(...complement(Number(head[2]), Number(head[3]), parseRangeList(freeBlocks[1]!)));
    usedInodes.push(...complement(number * inodesPerGroup + 1, (number + 1) * inodesPerGroup, parseRangeList(freeInodes[1]!)));
  }
  return { blockSize, usedBlocks: mergeRanges(usedBlocks), usedInodes: mergeRanges(usedInodes) };
}

export async function readExt4Usage(target: string, log?: BuildLog): Promise<Ext4Usage> {
  const { stdout } = await run('dumpe2fs', [target], { log, what: "read the root filesystem's bitmaps" });
  return parseExt4Usage(stdout);
}
