import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { formatBytes } from '../format-bytes.ts';
import { sha256Text } from '../hash.ts';
import { hiddenTemporary } from '../temporary-names.ts';
import { type BlockRange, mergeRanges } from '../block-ranges.ts';

export type { BlockRange };

/**
 * A block map in bmap-tools' format (version 2.0, sha256): the image's blocks that hold data, each range with its
 * sha256, so `bmaptool copy` writes only those to a card and checks them as it goes. Everything outside the ranges
 * is zero in the image and is not written (a card's old contents stay there, which nothing on it reads).
 *
 * As bmaptool does: BlocksCount counts a partial last block as a block, and a range's sha256 covers only the bytes
 * that are in the image (bmaptool reads a range to the end of the file, which is short in the last block). The file's
 * own checksum is the sha256 of the whole file with its value written as 64 "0"s, then filled in.
 */

export interface HashedRange extends BlockRange {
  sha256: string;
}

export interface BmapFacts {
  imageSize: number;
  blockSize: number;
  /** Sorted, not overlapping, not adjacent (as mergeRanges returns them), each within the image. */
  ranges: HashedRange[];
}

const VERSION = '2.0';
const CHECKSUM_PLACEHOLDER = '0'.repeat(64);

export function blocksCount(imageSize: number, blockSize: number): number {
  return Math.ceil(imageSize / blockSize);
}

function checkRanges(facts: BmapFacts): void {
  const total = blocksCount(facts.imageSize, facts.blockSize);
  let after = 0;
  for (const { first, last } of facts.ranges) {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < after || last < first || last >= total) {
      throw new Error(`bmap range ${first}-${last} is not sorted, separate and within the image's ${total} blocks`);
    }
    after = last + 2;
  }
}

function rangeLine(range: HashedRange): string {
  const blocks = range.first === range.last ? `${range.first}` : `${range.first}-${range.last}`;
  return `        <Range chksum="${range.sha256}"> ${blocks} </Range>\n`;
}

/** The bmap file's text, its checksum filled in. Only sizes, block numbers and hashes: no date, no host name. */
export function bmapText(facts: BmapFacts): string {
  checkRanges(facts);
  const total = blocksCount(facts.imageSize, facts.blockSize);
  const mapped = facts.ranges.reduce((sum, r) => sum + r.last - r.first + 1, 0);
  const percent = total === 0 ? '0.0' : ((mapped * 100) / total).toFixed(1);
  const text = [
    '<?xml version="1.0" ?>\n',
    '<!-- The block map of an image file (bmap-tools format): the blocks that hold data, which `bmaptool copy`\n',
    '     writes to the card, checking each range\'s checksum. The other blocks are zero and are not written.\n',
    '     Written by simplex-pi. -->\n\n',
    `<bmap version="${VERSION}">\n`,
    `    <!-- Image size in bytes: ${formatBytes(facts.imageSize)} -->\n`,
    `    <ImageSize> ${facts.imageSize} </ImageSize>\n\n`,
    '    <!-- Size of a block in bytes -->\n',
    `    <BlockSize> ${facts.blockSize} </BlockSize>\n\n`,
    '    <!-- Count of blocks in the image file -->\n',
    `    <BlocksCount> ${total} </BlocksCount>\n\n`,
    `    <!-- Count of mapped blocks: ${formatBytes(mapped * facts.blockSize)} or ${percent}% -->\n`,
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>\n\n`,
    '    <!-- Type of checksum used in this file -->\n',
    '    <ChecksumType> sha256 </ChecksumType>\n\n',
    '    <!-- The sha256 of this file, computed with its own value written as 64 "0" characters -->\n',
    `    <BmapFileChecksum> ${CHECKSUM_PLACEHOLDER} </BmapFileChecksum>\n\n`,
    "    <!-- The block map: ranges of blocks, or single blocks, each with its checksum ('chksum'). -->\n",
    '    <BlockMap>\n',
    ...facts.ranges.map(rangeLine),
    '    </BlockMap>\n',
    '</bmap>\n',
  ].join('');
  return text.replace(CHECKSUM_PLACEHOLDER, sha256Text(text));
}

/** The sha256 of a range's bytes, to the end of the image where the last block is partial. */
async function rangeSha256(image: string, range: BlockRange, blockSize: number, imageSize: number): Promise<string> {
  const hash = createHash('sha256');
  const start = range.first * blockSize;
  const end = Math.min((range.last + 1) * blockSize, imageSize);
  for await (const chunk of createReadStream(image, { start, end: end - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sizeOf(image: string, expected: number | undefined): Promise<number> {
  const { size } = await stat(image).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new UserError(`cannot write a bmap for ${image}: there is no such file`);
    throw error;
  });
  if (expected !== undefined && expected !== size) {
    throw new UserError(`cannot write a bmap for ${image}: it is ${size} bytes, not the ${expected} its block ranges were found for; it changed after they were read, so build it again`);
  }
  if (size === 0) throw new UserError(`cannot write a bmap for ${image}: it is empty (0 bytes)`);
  return size;
}

/**
 * Write `output`, the bmap of `image` whose data is in the `mapped` ranges (the blocks its filesystems use; the
 * caller knows them, and everything else in the image is zero). Ranges are merged and sorted, each is hashed from
 * the image, and the file is written under a temporary name and renamed when complete.
 */
export async function writeBmap(options: {
  image: string;
  output: string;
  blockSize: number;
  mapped: BlockRange[];
  imageSize?: number;
}): Promise<{ mappedBlocks: number; totalBlocks: number }> {
  const { image, blockSize } = options;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`bmap block size must be a positive whole number, not ${blockSize}`);
  const imageSize = await sizeOf(image, options.imageSize);
  const totalBlocks = blocksCount(imageSize, blockSize);
  const ranges = mergeRanges(options.mapped);
  const outside = ranges.find((r) => r.last >= totalBlocks);
  if (outside) {
    throw new UserError(
      `cannot write a bmap for ${image}: its data is said to be in blocks ${outside.first}-${outside.last}, but it has blocks 0-${totalBlocks - 1} of ${blockSize} bytes; the image is shorter than its partitions, so build it again`,
    );
  }
  const hashed: HashedRange[] = [];
  for (const range of ranges) hashed.push({ ...range, sha256: await rangeSha256(image, range, blockSize, imageSize) });
  const temporary = hiddenTemporary(options.output);
  try {
    await writeFile(temporary, bmapText({ imageSize, blockSize, ranges: hashed }));
    await rename(temporary, options.output);
  } finally {
    await rm(temporary, { force: true });
  }
  return { mappedBlocks: hashed.reduce((sum, r) => sum + r.last - r.first + 1, 0), totalBlocks };
}
