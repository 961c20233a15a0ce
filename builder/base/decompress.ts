import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { execa } from 'execa';
import { partialPath } from '../cache.ts';
import { UserError } from '../errors.ts';
import type { BuildLog } from '../log.ts';
import type { ProgressReporter } from '../progress.ts';

/** How a base image file is compressed, as found from its content. */
export type ImageCompression = 'xz' | 'none';

/** The compression of an image file, from its first bytes (names lie; magic numbers do not). */
export async function detectCompression(path: string): Promise<ImageCompression> {
  const stream = createReadStream(path, { start: 0, end: 5 });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const head = Buffer.concat(chunks);
  if (head.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head[0] === 0x1f && head[1] === 0x8b) throw new UserError(`${path} is gzip-compressed; only .img and .img.xz are supported (decompress it first)`);
  if (head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) throw new UserError(`${path} is a zip archive; only .img and .img.xz are supported (unzip it first)`);
  return 'none';
}

/**
 * Write the uncompressed image to `final`, hashing it on the way, and keep it only if the hash is `expected`
 * (when given). Returns the sha256. Sparse-friendly: xz streams straight to the file.
 */
export async function decompressVerified(
  source: string,
  final: string,
  options: { expected?: string; what: string; log?: BuildLog; onProgress?: ProgressReporter },
): Promise<string> {
  const compression = await detectCompression(source);
  const temporary = partialPath(final);
  const hash = createHash('sha256');
  let bytes = 0;
  const started = Date.now();
  let lastReport = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      const now = Date.now();
      if (options.onProgress && now - lastReport > 250) {
        lastReport = now;
        options.onProgress({ bytes, bytesPerSecond: (bytes * 1000) / Math.max(1, now - started) });
      }
      callback(null, chunk);
    },
  });
  options.log?.info(`${compression === 'xz' ? 'decompress' : 'copy'} ${source} -> ${final}`);
  try {
    if (compression === 'xz') {
      const xz = execa('xz', ['--decompress', '--stdout', '--threads=0', source], { stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false } });
      await Promise.all([pipeline(xz.stdout!, tap, createWriteStream(temporary)), xz]).catch((error) => {
        throw new UserError(`cannot decompress ${options.what} (${source}): ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
      });
    } else {
      await pipeline(createReadStream(source, { highWaterMark: 1 << 20 }), tap, createWriteStream(temporary));
    }
    const actual = hash.digest('hex');
    if (options.expected && actual !== options.expected) {
      throw new UserError(
        `sha256 mismatch for ${options.what} (uncompressed): expected ${options.expected}, got ${actual}; nothing was written`,
      );
    }
    await rename(temporary, final);
    return actual;
  } finally {
    await rm(temporary, { force: true });
  }
}
