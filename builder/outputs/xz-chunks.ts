import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { partialPath } from '../cache.ts';
import { CommandFailed, displayCommand, run } from '../exec.ts';
import { UserError, messageOf } from '../errors.ts';
import { hashOf } from '../hash.ts';
import { type BuildLog, silentLog } from '../log.ts';
import { hiddenTemporary } from '../temporary-names.ts';

/**
 * An image compressed as one .xz made of independent xz streams, one per fixed-size chunk of the image, in order.
 * Concatenated streams are a valid .xz file (xz, xzcat and libarchive, which Raspberry Pi Imager uses, read them as
 * one), and each chunk's stream depends only on that chunk's bytes, so it is cached by their sha256: a rebuild that
 * changed a few blocks recompresses only the chunks that hold them.
 */

/**
 * The size chunks are cut around (chunkLimits: between 2 and 32 MiB, about 10 on average, where the content says):
 * the size of xz -6's dictionary, so each stream still finds most of its matches; small enough that recompressing a
 * changed chunk takes seconds on one core; large enough that the size lost against one stream (each chunk starts
 * with an empty dictionary) stays near 1 %.
 */
export const CHUNK_BYTES = 8 * 1024 * 1024;

export interface ChunkedXz {
  chunks: number;
  /** Chunks xz compressed in this run. */
  recompressed: number;
  /** Chunks whose stream came from the cache, or from an identical chunk earlier in the image (runs of zeros). */
  reused: number;
  imageSize: number;
  imageSha256: string;
  xzSize: number;
  xzSha256: string;
}

export interface CompressOptions {
  image: string;
  output: string;
  cacheDir: string;
  /** xz's preset, 0-9. */
  level: number;
  chunkBytes?: number;
  /** How many xz processes at once; each holds one chunk in memory. */
  jobs?: number;
  log?: BuildLog;
  /** Bytes of the image compressed (or taken from the cache) and written so far, of its size. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * Single-threaded xz: its output depends only on its input and xz's version, not on the machine's core count
 * (multi-threaded xz splits blocks by the thread count). --no-adjust makes a memory limit that would lower the
 * preset an error instead of a silently different stream.
 */
const FORMAT_ARGS = ['--format=xz', '--check=crc64', '--threads=1', '--no-adjust'] as const;

/** A name only this module writes in the cache directory: `<sha256>.xz`. Anything else there is left alone. */
const ENTRY = /^[0-9a-f]{64}\.xz$/;
const PARTIAL = /^[0-9a-f]{64}\.xz\.partial-\d+$/;
const STALE_PARTIAL_MS = 60 * 60 * 1000;

function xzArgs(level: number): string[] {
  return [`-${level}`, ...FORMAT_ARGS, '--stdout'];
}

/**
 * The xz and liblzma versions (both lines of `xz --version`): a stream is only byte-identical for the same encoder,
 * and Debian packages liblzma apart from the xz program, so either can change alone.
 */
async function xzVersion(log: BuildLog): Promise<string> {
  const { stdout } = await run('xz', ['--version'], { log, env: QUIET_ENV, what: 'find the version of xz' });
  return stdout.trim();
}

/** The user's XZ_DEFAULTS or XZ_OPT could change the stream (a memory limit, a filter chain): none here. */
const QUIET_ENV = { XZ_DEFAULTS: '', XZ_OPT: '' };

function entryKey(chunkSha256: string, encoder: { xzVersion: string; level: number }): string {
  return hashOf({ chunkSha256, xzVersion: encoder.xzVersion, level: encoder.level, format: [...FORMAT_ARGS] });
}

function checkOptions(options: CompressOptions): { chunkBytes: number; jobs: number } {
  const chunkBytes = options.chunkBytes ?? CHUNK_BYTES;
  const jobs = options.jobs ?? availableParallelism();
  if (!Number.isInteger(options.level) || options.level < 0 || options.level > 9) {
    throw new UserError(`xz level ${options.level} is not a preset xz knows: use a whole number from 0 to 9 (6 is xz's default)`);
  }
  // Both come from code, not from a recipe: a wrong one is a bug.
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new Error(`chunkBytes must be a positive whole number, not ${chunkBytes}`);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`jobs must be a positive whole number, not ${jobs}`);
  return { chunkBytes, jobs };
}

async function imageSizeOf(image: string): Promise<number> {
  const size = await stat(image).then(
    (s) => s.size,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new UserError(`cannot compress ${image}: there is no such file`);
      throw error;
    },
  );
  if (size === 0) throw new UserError(`cannot compress ${image}: it is empty (0 bytes), so the build that made it did not finish`);
  return size;
}

/** Up to `count` holders at once: bounds the chunks in memory and the xz processes running. */
class Slots {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * Where chunks end: after a 4 KiB block whose own content says so (the low bits of its hash are zero), at least
 * `min` and at most `max` bytes after the last cut. Fixed-size chunks would not do: the root filesystem is laid out
 * in name order (image/recreate-root.ts), so a file in /etc that grows by one block moves every block after it, and
 * every fixed chunk after it would change. Cut by content, the chunks after the moved run end at the same blocks as
 * before and have the same bytes: only the chunks holding what really changed (the file, the inode tables that say
 * where files are, a directory) are compressed again. The blocks are the filesystems' own size, so a move is always
 * a whole number of them.
 */
export interface ChunkLimits {
  min: number;
  max: number;
  /** A block ends a chunk when its hash's low 32 bits, masked with this, are zero: an average of mask + 1 blocks past `min`. */
  mask: number;
}

export const CUT_BLOCK = 4096;

/** From the average chunk size asked for: min a quarter of it, max four times it. */
export function chunkLimits(chunkBytes: number): ChunkLimits {
  const blocks = Math.max(1, Math.round((chunkBytes * 0.75) / CUT_BLOCK));
  const mask = 2 ** Math.max(0, Math.round(Math.log2(blocks))) - 1;
  return { min: Math.max(CUT_BLOCK, Math.round(chunkBytes / 4 / CUT_BLOCK) * CUT_BLOCK), max: Math.max(CUT_BLOCK, chunkBytes * 4), mask };
}

/** Whether the block is one that ends a chunk: SHA-1 as a fast, well-mixed function of its bytes (not for security). */
export function endsChunk(block: Buffer, mask: number): boolean {
  return (createHash('sha1').update(block).digest().readUInt32LE(0) & mask) === 0;
}

/** Reads the image in order and hands out its chunks, cut where `endsChunk` says. */
class Chunker {
  private buffer = Buffer.alloc(0);
  private position = 0;
  private done = false;
  constructor(
    private readonly file: FileHandle,
    private readonly limits: ChunkLimits,
  ) {}

  /** The next chunk, or undefined at the image's end. */
  async next(): Promise<Buffer | undefined> {
    const { min, max, mask } = this.limits;
    let scanned = 0;
    for (;;) {
      // Blocks before `min` never end a chunk; from there each one is asked.
      for (let at = Math.max(scanned, min - CUT_BLOCK); at + CUT_BLOCK <= this.buffer.length && at + CUT_BLOCK <= max; at += CUT_BLOCK) {
        scanned = at + CUT_BLOCK;
        if (at + CUT_BLOCK >= min && endsChunk(this.buffer.subarray(at, at + CUT_BLOCK), mask)) return this.take(at + CUT_BLOCK);
      }
      if (this.buffer.length >= max) return this.take(max);
      if (this.done) return this.buffer.length ? this.take(this.buffer.length) : undefined;
      await this.fill(max);
    }
  }

  private take(bytes: number): Buffer {
    const chunk = Buffer.from(this.buffer.subarray(0, bytes));
    this.buffer = this.buffer.subarray(bytes);
    return chunk;
  }

  /** Read until `want` bytes are buffered or the file ends. A short read before the end is retried, not taken as the end. */
  private async fill(want: number): Promise<void> {
    const more = Buffer.allocUnsafe(Math.max(want - this.buffer.length, 1 << 20));
    let filled = 0;
    while (filled < more.length) {
      const { bytesRead } = await this.file.read(more, filled, more.length - filled, this.position + filled);
      if (bytesRead === 0) {
        this.done = true;
        break;
      }
      filled += bytesRead;
    }
    this.position += filled;
    this.buffer = Buffer.concat([this.buffer, more.subarray(0, filled)]);
  }
}

/** A cache hit: the entry is there, and its mtime is now, so pruning keeps recently used entries longest. */
async function touchEntry(entry: string): Promise<boolean> {
  const now = new Date();
  try {
    await utimes(entry, now, now);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Compress one chunk into the cache entry: xz writes a temporary file, renamed only when xz succeeded. */
async function compressChunk(chunk: Buffer, entry: string, level: number, log: BuildLog, what: string): Promise<void> {
  const partial = partialPath(entry);
  const args = xzArgs(level);
  const shown = displayCommand('xz', args);
  // `run` keeps output as text, which would mangle a binary stream; here xz writes the stream to the file itself.
  log.command(`${shown} < (${chunk.length} bytes) > ${partial}`);
  try {
    const result = await execa('xz', args, { input: chunk, stdout: { file: partial }, stderr: 'pipe', reject: false, env: QUIET_ENV });
    if (result.failed) {
      const why = result.exitCode === undefined ? `could not be started (${result.originalMessage ?? 'unknown error'}); is xz installed? \`simplex-pi doctor\` checks` : `exited with code ${result.exitCode}`;
      const stderr = String(result.stderr ?? '').trim();
      throw new CommandFailed(`Could not compress ${what}: \`${shown}\` ${why}${stderr ? `:\n${stderr}` : ''}`, shown, result.exitCode);
    }
    await rename(partial, entry);
  } finally {
    await rm(partial, { force: true });
  }
}

/** Append a cache entry to the output, hashing it on the way. */
async function appendEntry(out: FileHandle, outHash: Hash, entry: string, output: string): Promise<number> {
  const stream = await readFile(entry).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
    throw new UserError(`the xz chunk cache entry ${entry} disappeared while ${output} was being written (was the cache pruned at the same time?); run the build again`);
  });
  outHash.update(stream);
  await out.write(stream);
  return stream.length;
}

/**
 * Compress `image` into `output` as one xz stream per chunk, taking unchanged chunks' streams from `cacheDir`.
 * The image is read once, in order, hashing it and each chunk in the same pass; the output is written in order under
 * a temporary name and renamed when complete. The same image bytes with the same xz version and level give the same
 * output, whatever `jobs` and whatever was in the cache.
 */
export async function compressInChunks(options: CompressOptions): Promise<ChunkedXz> {
  const { chunkBytes, jobs } = checkOptions(options);
  const log = options.log ?? silentLog;
  const total = await imageSizeOf(options.image);
  const encoder = { xzVersion: await xzVersion(log), level: options.level };
  await mkdir(options.cacheDir, { recursive: true });
  const temporary = hiddenTemporary(options.output);
  const input = await open(options.image, 'r');
  try {
    const out = await open(temporary, 'w');
    try {
      const result = await compressOpened({ ...options, chunkBytes, jobs, log, total, encoder, input, out });
      await out.close();
      await rename(temporary, options.output);
      return result;
    } finally {
      await out.close().catch(() => undefined);
    }
  } finally {
    await input.close();
    await rm(temporary, { force: true });
  }
}

interface Opened extends CompressOptions {
  chunkBytes: number;
  jobs: number;
  log: BuildLog;
  total: number;
  encoder: { xzVersion: string; level: number };
  input: FileHandle;
  out: FileHandle;
}

/**
 * The pass over the image. Each chunk gets a promise of its cache entry (a hit, an xz run, or the same run as an
 * identical earlier chunk), and a chain appends the entries to the output in order as they become ready. A chunk's
 * buffer holds a slot until xz has it all, so at most `jobs` chunks are in memory besides the one being appended.
 */
async function compressOpened(o: Opened): Promise<ChunkedXz> {
  const slots = new Slots(o.jobs);
  const imageHash = createHash('sha256');
  const outHash = createHash('sha256');
  const inFlight = new Map<string, Promise<void>>();
  const tasks: Array<Promise<unknown>> = [];
  let failure: unknown;
  let writing: Promise<void> = Promise.resolve();
  let [chunks, recompressed, imageSize, xzSize] = [0, 0, 0, 0];
  o.onProgress?.(0, o.total);
  const chunker = new Chunker(o.input, chunkLimits(o.chunkBytes));
  for (;;) {
    await slots.acquire();
    const chunk = failure === undefined ? await chunker.next() : undefined;
    if (!chunk) {
      slots.release();
      break;
    }
    imageHash.update(chunk);
    imageSize += chunk.length;
    chunks++;
    const entry = join(o.cacheDir, `${entryKey(createHash('sha256').update(chunk).digest('hex'), o.encoder)}.xz`);
    let ready = inFlight.get(entry);
    if (ready) {
      slots.release();
    } else if (await touchEntry(entry)) {
      slots.release();
      ready = Promise.resolve();
    } else {
      recompressed++;
      const what = `bytes ${imageSize - chunk.length}-${imageSize - 1} of ${o.image}`;
      ready = compressChunk(chunk, entry, o.encoder.level, o.log, what).finally(() => slots.release());
      inFlight.set(entry, ready);
    }
    const done = imageSize;
    const settled = ready;
    writing = writing.then(async () => {
      await settled;
      xzSize += await appendEntry(o.out, outHash, entry, o.output);
      o.onProgress?.(done, o.total);
    });
    // A failure stops the reading; the chain, which skips every append after it, throws it at the end.
    writing.catch((error: unknown) => (failure ??= error));
    tasks.push(ready.catch((error: unknown) => (failure ??= error)));
  }
  // Every xz started is waited for, so none is left writing into the cache after this returns.
  await Promise.allSettled(tasks);
  await writing;
  return { chunks, recompressed, reused: chunks - recompressed, imageSize, imageSha256: imageHash.digest('hex'), xzSize, xzSha256: outHash.digest('hex') };
}

interface CacheFile {
  path: string;
  size: number;
  mtimeMs: number;
}

async function cacheFiles(cacheDir: string, pattern: RegExp): Promise<CacheFile[]> {
  const names = await readdir(cacheDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const files: CacheFile[] = [];
  for (const name of names.filter((n) => pattern.test(n))) {
    const path = join(cacheDir, name);
    // Another build may remove or rename a file between readdir and stat: it is simply no longer there.
    const s = await stat(path).catch(() => undefined);
    if (s?.isFile()) files.push({ path, size: s.size, mtimeMs: s.mtimeMs });
  }
  return files;
}

/**
 * Shrink the chunk cache to at most `keepBytes`, removing the least recently used entries (oldest mtime: a hit
 * renews it) first. Temporary files older than an hour are from a build that was killed, and go too; younger ones
 * may belong to a build running now, so they are counted but kept.
 */
export async function pruneChunkCache(cacheDir: string, keepBytes: number): Promise<{ removed: number; freedBytes: number }> {
  let [removed, freedBytes] = [0, 0];
  const remove = async (file: CacheFile) => {
    try {
      await rm(file.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new UserError(`cannot remove ${file.path} from the xz chunk cache: ${messageOf(error)}`);
    }
    removed++;
    freedBytes += file.size;
  };
  let kept = 0;
  for (const partial of await cacheFiles(cacheDir, PARTIAL)) {
    if (Date.now() - partial.mtimeMs > STALE_PARTIAL_MS) await remove(partial);
    else kept += partial.size;
  }
  const newestFirst = (await cacheFiles(cacheDir, ENTRY)).sort((a, b) => b.mtimeMs - a.mtimeMs || a.path.localeCompare(b.path));
  // The newest that fit are kept; from the first that does not, every older one goes (a small old entry is not
  // kept in place of a newer large one).
  let full = false;
  for (const entry of newestFirst) {
    full ||= kept + entry.size > keepBytes;
    if (full) await remove(entry);
    else kept += entry.size;
  }
  return { removed, freedBytes };
}
