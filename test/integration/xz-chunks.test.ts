import { createHash, randomBytes } from 'node:crypto';
import { copyFile, open, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BlockRange, writeBmap } from '../../builder/outputs/bmap.ts';
import { type ChunkedXz, chunkLimits, compressInChunks, endsChunk, pruneChunkCache } from '../../builder/outputs/xz-chunks.ts';
import { sha256File } from '../../builder/hash.ts';
import { scratch } from '../helpers/env.ts';

/**
 * The chunked .img.xz and the bmap, checked with the real readers: xz, xzcat, bsdcat (libarchive, which Raspberry
 * Pi Imager decompresses with) and bmaptool. The image is built here: random and text-like data, zeros written and a
 * hole never written (sparse), and a size that is a multiple of neither the chunk nor the block.
 */

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;
const BLOCK = 4096;
const SIZE = 100 * MiB - 1000;

/** Text-like bytes (words from a small vocabulary): compressible, as most of a real image is. */
function textLike(bytes: number): Buffer {
  const words = ['relay', 'onion', 'server', 'queue', 'simplex', 'message', 'tor', 'key', 'file', 'the', 'a', 'of'];
  const picks = randomBytes(bytes);
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const word = `${words[picks[i % bytes]! % words.length]}${picks[i % bytes]! & 1 ? '\n' : ' '}`;
    parts.push(word);
    length += word.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

/** Where the image has data (everything else is zero): byte offset and content. */
const regions = (): Array<[number, Buffer]> => [
  [0, randomBytes(6 * MiB)],
  [6 * MiB, textLike(10 * MiB)],
  // 16-60 MiB: a hole, never written.
  [60 * MiB, randomBytes(MiB)],
  [61 * MiB, Buffer.alloc(31 * MiB)], // zeros written: whole zero chunks, some of them the same as the hole's
  [92 * MiB, textLike(4 * MiB)],
  [SIZE - 3000, randomBytes(3000)], // data in the partial last block
];

/** The blocks holding the regions that are not zero, as the emit stage would find them from the filesystems. */
function mappedRanges(): BlockRange[] {
  const covering = (start: number, length: number) => ({ first: Math.floor(start / BLOCK), last: Math.ceil((start + length) / BLOCK) - 1 });
  // Given out of order and split, as a caller collecting them per filesystem might.
  return [covering(SIZE - 3000, 3000), covering(6 * MiB, 10 * MiB), covering(0, 6 * MiB), covering(92 * MiB, 4 * MiB), covering(60 * MiB, MiB)];
}

async function makeImage(path: string): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (const [offset, data] of regions()) await file.write(data, 0, data.length, offset);
    await file.truncate(SIZE);
  } finally {
    await file.close();
  }
}

/** The sha256 of what a command writes to stdout, streamed (the image is larger than execa's output buffer). */
async function sha256OfOutput(file: string, args: string[]): Promise<string> {
  const hash = createHash('sha256');
  const subprocess = execa(file, args, { buffer: { stdout: false }, stdin: 'ignore' });
  subprocess.stdout.on('data', (chunk: Buffer) => hash.update(chunk));
  await subprocess;
  return hash.digest('hex');
}

/** xz --robot --list: the number of streams in the file. */
async function streamCount(path: string): Promise<number> {
  const { stdout } = await execa('xz', ['--robot', '--list', path]);
  const fields = stdout.split('\n').find((line) => line.startsWith('file\t'))!.split('\t');
  return Number(fields[1]);
}

async function cacheEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^[0-9a-f]{64}\.xz$/.test(name)).sort();
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const started = performance.now();
  const result = await work();
  return { result, seconds: (performance.now() - started) / 1000 };
}

describe('chunked xz (builder/outputs/xz-chunks.ts)', () => {
  let dir: string;
  let image: string;
  let imageSha: string;
  let cold: ChunkedXz;
  let coldOutput: string;
  const cache = () => join(dir, 'cache');

  beforeAll(async () => {
    dir = await scratch('xz-chunks');
    image = join(dir, 'image.img');
    await makeImage(image);
    imageSha = await sha256File(image);
    coldOutput = join(dir, 'cold.img.xz');
    const progress: Array<[number, number]> = [];
    const run = await timed(() =>
      compressInChunks({ image, output: coldOutput, cacheDir: cache(), level: 6, chunkBytes: CHUNK, jobs: 2, onProgress: (done, total) => progress.push([done, total]) }),
    );
    cold = run.result;
    console.info(`cold: ${run.seconds.toFixed(1)} s for ${SIZE} bytes, ${cold.recompressed} chunks compressed`);
    expect(progress.at(0)).toEqual([0, SIZE]);
    expect(progress.at(-1)).toEqual([SIZE, SIZE]);
  }, 300_000);

  it('the test image is sparse, so the hole is read as a hole', async () => {
    const { size, blocks } = await stat(image);
    expect(size).toBe(SIZE);
    expect(blocks * 512).toBeLessThan(size - 40 * MiB);
  });

  it('describes the image and the output it wrote', async () => {
    const { min, max } = chunkLimits(CHUNK);
    expect(cold.chunks).toBeGreaterThanOrEqual(Math.ceil(SIZE / max));
    expect(cold.chunks).toBeLessThanOrEqual(Math.ceil(SIZE / min));
    expect(cold).toMatchObject({ imageSize: SIZE, imageSha256: imageSha, xzSize: (await stat(coldOutput)).size });
    expect(cold.xzSha256).toBe(await sha256File(coldOutput));
    // Identical chunks (runs of zeros in the hole and the written zeros) are compressed once.
    expect(cold.recompressed + cold.reused).toBe(cold.chunks);
    expect(await cacheEntries(cache())).toHaveLength(cold.recompressed);
    expect((await readdir(dir)).filter((name) => name.includes('partial'))).toEqual([]);
  });

  it('xzcat and bsdcat (libarchive) each give back the exact image; xz -t accepts it; one stream per chunk', async () => {
    expect(await sha256OfOutput('xzcat', [coldOutput])).toBe(imageSha);
    expect(await sha256OfOutput('bsdcat', [coldOutput])).toBe(imageSha);
    await execa('xz', ['-t', coldOutput]);
    expect(await streamCount(coldOutput)).toBe(cold.chunks);
  }, 120_000);

  it('is byte-identical with an empty cache and one job, and from a warm cache', async () => {
    const single = await compressInChunks({ image, output: join(dir, 'single.img.xz'), cacheDir: join(dir, 'cache-single'), level: 6, chunkBytes: CHUNK, jobs: 1 });
    expect(single.xzSha256).toBe(cold.xzSha256);
    expect(single.recompressed).toBe(cold.recompressed);
    const warmOutput = join(dir, 'warm.img.xz');
    const warm = await timed(() => compressInChunks({ image, output: warmOutput, cacheDir: cache(), level: 6, chunkBytes: CHUNK, jobs: 2 }));
    console.info(`warm: ${warm.seconds.toFixed(1)} s`);
    expect(warm.result).toEqual({ ...cold, recompressed: 0, reused: cold.chunks });
    expect(await sha256File(warmOutput)).toBe(cold.xzSha256);
  }, 300_000);

  it('recompresses only the chunk holding a changed 4 KiB block (and the next, if the change moved a cut), and the result is the changed image', async () => {
    const changed = join(dir, 'changed.img');
    await execa('cp', ['--sparse=always', image, changed]);
    const file = await open(changed, 'r+');
    // Block 2 of chunk 1, inside the random data.
    await file.write(randomBytes(BLOCK), 0, BLOCK, CHUNK + 2 * BLOCK);
    await file.close();
    const output = join(dir, 'changed.img.xz');
    const result = await compressInChunks({ image: changed, output, cacheDir: cache(), level: 6, chunkBytes: CHUNK, jobs: 2 });
    expect(result.imageSha256).toBe(await sha256File(changed));
    expect(result.recompressed).toBeGreaterThanOrEqual(1);
    expect(result.recompressed).toBeLessThanOrEqual(2);
    expect(result.reused).toBe(result.chunks - result.recompressed);
    expect(result.xzSha256).not.toBe(cold.xzSha256);
    expect(await sha256OfOutput('xzcat', [output])).toBe(result.imageSha256);
  }, 120_000);

  it('a block inserted near the start moves everything after it, and still only the chunks around it are compressed again', async () => {
    // What a file in /etc that grows by one block does to the root filesystem mke2fs lays out in name order.
    const moved = join(dir, 'moved.img');
    const bytes = await readFile(image);
    await writeFile(moved, Buffer.concat([bytes.subarray(0, 3 * MiB), randomBytes(BLOCK), bytes.subarray(3 * MiB, SIZE - BLOCK)]));
    const output = join(dir, 'moved.img.xz');
    const result = await compressInChunks({ image: moved, output, cacheDir: cache(), level: 6, chunkBytes: CHUNK, jobs: 2 });
    // Fixed-size chunks would compress every chunk from the insertion on (more than 20 here).
    expect(result.recompressed).toBeGreaterThanOrEqual(1);
    expect(result.recompressed).toBeLessThanOrEqual(3);
    expect(await sha256OfOutput('xzcat', [output])).toBe(await sha256File(moved));
  }, 120_000);

  it('does not reuse a stream made at another xz level', async () => {
    const before = (await cacheEntries(cache())).length;
    const output = join(dir, 'level1.img.xz');
    const result = await compressInChunks({ image, output, cacheDir: cache(), level: 1, chunkBytes: CHUNK, jobs: 2 });
    expect(result.recompressed).toBe(cold.recompressed);
    expect(await cacheEntries(cache())).toHaveLength(before + cold.recompressed);
    expect(result.xzSha256).not.toBe(cold.xzSha256);
    expect(await sha256OfOutput('xzcat', [output])).toBe(imageSha);
  }, 120_000);

  it('refuses a level xz does not have, and a missing image, saying which', async () => {
    await expect(compressInChunks({ image, output: join(dir, 'x.xz'), cacheDir: cache(), level: 12 })).rejects.toThrow(/xz level 12 .* 0 to 9/);
    await expect(compressInChunks({ image: join(dir, 'nope.img'), output: join(dir, 'x.xz'), cacheDir: cache(), level: 6 })).rejects.toThrow(/nope\.img: there is no such file/);
    expect(await readdir(dir)).not.toContain('x.xz');
  });

  it('pruneChunkCache keeps the most recently used entries (a cache hit renews one) and removes stale temporary files only', async () => {
    const prune = join(dir, 'cache-prune');
    await execa('cp', ['-r', cache(), prune]);
    const entries = await cacheEntries(prune);
    const base = Date.now() / 1000 - 10 * 3600;
    // Entry i was last used i minutes after the base: the last one is the newest.
    for (const [i, name] of entries.entries()) await utimes(join(prune, name), base + i * 60, base + i * 60);
    // A hit renews its entry: zeros the size of the hole's chunks (the smallest if a zero block ends a chunk, else
    // the largest) are one of them, already in the cache.
    const zeros = join(dir, 'zeros.img');
    const limits = chunkLimits(CHUNK);
    await execa('truncate', ['-s', String(endsChunk(Buffer.alloc(BLOCK), limits.mask) ? limits.min : limits.max), zeros]);
    expect(await compressInChunks({ image: zeros, output: join(dir, 'zeros.img.xz'), cacheDir: prune, level: 6, chunkBytes: CHUNK })).toMatchObject({ recompressed: 0, reused: 1 });
    const mtimes = await Promise.all(entries.map(async (name) => (await stat(join(prune, name))).mtimeMs / 1000));
    const renewed = entries.filter((_, i) => mtimes[i]! > base + 3600);
    expect(renewed).toHaveLength(1);
    const newestOther = entries.filter((name) => name !== renewed[0]).at(-1)!;
    const sizeOf = async (name: string) => (await stat(join(prune, name))).size;
    const kept = [renewed[0]!, newestOther];
    const stale = join(prune, `${'e'.repeat(64)}.xz.partial-123`);
    const fresh = `${'f'.repeat(64)}.xz.partial-456`;
    await Promise.all([writeFile(stale, 'x'), writeFile(join(prune, fresh), 'y'), writeFile(join(prune, 'README'), 'not ours')]);
    await utimes(stale, base, base);
    const totalBefore = (await Promise.all(entries.map(sizeOf))).reduce((a, b) => a + b, 0);
    const keptBytes = (await sizeOf(kept[0]!)) + (await sizeOf(kept[1]!));
    // The fresh temporary file (1 byte) may be a running build's: it counts, and stays.
    const result = await pruneChunkCache(prune, keptBytes + 1);
    expect((await readdir(prune)).sort()).toEqual([...kept, fresh, 'README'].sort());
    expect(result).toEqual({ removed: entries.length - 2 + 1, freedBytes: totalBefore - keptBytes + 1 });
    // One byte less: the older of the two goes.
    const olderSize = await sizeOf(newestOther);
    expect(await pruneChunkCache(prune, keptBytes)).toEqual({ removed: 1, freedBytes: olderSize });
    expect(await cacheEntries(prune)).toEqual([renewed[0]]);
    expect(await pruneChunkCache(join(dir, 'no-such-cache'), 0)).toEqual({ removed: 0, freedBytes: 0 });
  }, 120_000);

  describe('bmap (builder/outputs/bmap.ts) with bmaptool', () => {
    let bmap: string;

    beforeAll(async () => {
      bmap = join(dir, 'image.bmap');
      const { mappedBlocks, totalBlocks } = await writeBmap({ image, output: bmap, blockSize: BLOCK, mapped: mappedRanges() });
      expect(totalBlocks).toBe(Math.ceil(SIZE / BLOCK));
      expect(mappedBlocks).toBe((6 + 10 + 1 + 4) * (MiB / BLOCK) + 1);
    });

    it.each([
      ['the .img.xz', () => coldOutput],
      ['the raw .img', () => image],
    ])('bmaptool copy --bmap from %s writes the exact image', async (_name, source) => {
      const copy = join(dir, 'copy.img');
      await execa('bmaptool', ['copy', '--bmap', bmap, source(), copy]);
      expect(await sha256File(copy)).toBe(imageSha);
      expect((await stat(copy)).size).toBe(SIZE);
    }, 120_000);

    it('bmaptool refuses a bmap whose file checksum is wrong', async () => {
      const text = await readFile(bmap, 'utf8');
      const value = /<BmapFileChecksum> ([0-9a-f]{64}) /.exec(text)![1]!;
      const corrupt = join(dir, 'corrupt.bmap');
      await writeFile(corrupt, text.replace(value, `${value[0] === '0' ? '1' : '0'}${value.slice(1)}`));
      const result = await execa('bmaptool', ['copy', '--bmap', corrupt, image, join(dir, 'refused.img')], { reject: false, all: true });
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toMatch(/checksum mismatch for bmap file/);
    });

    it('bmaptool refuses to copy when a mapped range differs from the image', async () => {
      const other = join(dir, 'other.img');
      await copyFile(image, other);
      const file = await open(other, 'r+');
      await file.write(randomBytes(16), 0, 16, 60 * MiB + 100);
      await file.close();
      const result = await execa('bmaptool', ['copy', '--bmap', bmap, other, join(dir, 'refused.img')], { reject: false, all: true });
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toMatch(/checksum mismatch for blocks range/);
    }, 60_000);
  });
});
