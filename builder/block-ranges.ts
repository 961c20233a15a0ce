/**
 * Runs of block (or inode) numbers, inclusive: what an ext4 filesystem's bitmaps use (image/ext4-usage.ts) and what
 * a .bmap maps (outputs/bmap.ts).
 */
export interface BlockRange {
  first: number;
  last: number;
}

/** Sorted by first block, overlapping and adjacent ranges joined: bmaptool reads the image forwards only. */
export function mergeRanges(ranges: readonly BlockRange[]): BlockRange[] {
  // Ranges come from our own reading of the image's partitions: a malformed one is a bug.
  const bad = ranges.find((r) => !Number.isSafeInteger(r.first) || !Number.isSafeInteger(r.last) || r.first < 0 || r.last < r.first);
  if (bad) throw new Error(`block range ${bad.first}-${bad.last} is not a range of block numbers`);
  const sorted = [...ranges].sort((a, b) => a.first - b.first || a.last - b.last);
  const merged: BlockRange[] = [];
  for (const range of sorted) {
    const previous = merged.at(-1);
    if (previous && range.first <= previous.last + 1) previous.last = Math.max(previous.last, range.last);
    else merged.push({ ...range });
  }
  return merged;
}

