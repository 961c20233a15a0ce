import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import fetch from 'node-fetch';
import type { Cache } from '../cache.ts';
import { UserError, messageOf } from '../errors.ts';
import { exists } from '../exists.ts';
import { sha256File, sha256Text } from '../hash.ts';
import { type BuildLog, silentLog } from '../log.ts';
import type { ProgressReporter } from '../progress.ts';

export interface DownloadRequest {
  url: string;
  /** What this is, for messages: "smp-server", "Raspberry Pi OS image". */
  what: string;
  /** Expected sha256 of the downloaded bytes; when unknown, the caller must verify what the bytes become. */
  sha256?: string;
  log?: BuildLog;
  onProgress?: ProgressReporter;
  /** Attempts per call; each one resumes where the previous one stopped. */
  attempts?: number;
}

async function hashExisting(path: string, hash: Hash): Promise<number> {
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return size;
}

/**
 * One HTTP attempt: continue `partial` from its current size (HTTP Range) or start over when the server ignores
 * the range. Returns the sha256 of the whole partial file once the body ended.
 */
async function attempt(request: DownloadRequest, partial: string): Promise<string> {
  const hash = createHash('sha256');
  const have = await hashExisting(partial, hash);
  const headers: Record<string, string> = { 'user-agent': 'simplex-pi' };
  if (have > 0) headers.range = `bytes=${have}-`;
  request.log?.info(`GET ${request.url}${have ? ` (resuming at byte ${have})` : ''}`);
  const response = await fetch(request.url, { headers, redirect: 'follow' });
  if (response.status === 416 && have > 0) {
    // The partial file is already complete (or longer than the resource): let the hash decide.
    return hash.digest('hex');
  }
  if (!response.ok) throw new UserError(`download of ${request.what} failed: HTTP ${response.status} from ${request.url}`);
  const append = response.status === 206 && have > 0;
  if (!append && have > 0) {
    // The server ignored the range and sent the whole file: start the file and the hash again.
    (response.body as unknown as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
    await rm(partial, { force: true });
    return attempt(request, partial);
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? length + have : undefined;
  const out = createWriteStream(partial, { flags: append ? 'a' : 'w' });
  const started = Date.now();
  let received = 0;
  let lastReport = 0;
  try {
    for await (const chunk of response.body!) {
      const buffer = chunk as Buffer;
      hash.update(buffer);
      received += buffer.length;
      if (!out.write(buffer)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      const now = Date.now();
      if (request.onProgress && now - lastReport > 250) {
        lastReport = now;
        request.onProgress({ bytes: have + received, total, bytesPerSecond: (received * 1000) / Math.max(1, now - started) });
      }
    }
  } finally {
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
  if (total !== undefined && have + received < total) {
    throw new Error(`connection closed after ${have + received} of ${total} bytes`);
  }
  return hash.digest('hex');
}

/**
 * Where the download of `url` collects its bytes until they are verified: named after the URL, not the expected
 * sha256 (which may be unknown), so that a later run finds the partial file and resumes it.
 */
export function partialDownloadPath(cache: Cache, url: string): string {
  return cache.partialDownload(sha256Text(url).slice(0, 32));
}

/**
 * Download `url` into the cache as `downloads/<sha256>`, verifying the sha256 while the bytes stream in. An
 * interrupted download is resumed (also by a later run); a wrong sha256 deletes the bytes and stops the build.
 * A cached file is re-hashed before it is trusted.
 */
export async function downloadVerified(cache: Cache, request: DownloadRequest): Promise<string> {
  const log = request.log ?? silentLog;
  const final = request.sha256 ? cache.download(request.sha256) : undefined;
  if (final && (await exists(final))) {
    const actual = await sha256File(final);
    if (actual === request.sha256) {
      log.info(`cache hit for ${request.what}: ${final}`);
      return final;
    }
    log.info(`cached ${request.what} at ${final} has sha256 ${actual}; downloading it again`);
    await rm(final, { force: true });
  }
  const partial = partialDownloadPath(cache, request.url);
  await mkdir(dirname(partial), { recursive: true });
  const attempts = request.attempts ?? 4;
  let lastError: unknown;
  for (let i = 1; i <= attempts; i++) {
    let actual: string;
    try {
      actual = await attempt(request, partial);
    } catch (error) {
      if (error instanceof UserError) throw error;
      lastError = error;
      log.info(`download of ${request.what} interrupted (attempt ${i}/${attempts}): ${messageOf(error)}`);
      continue;
    }
    if (request.sha256 && actual !== request.sha256) {
      await rm(partial, { force: true });
      throw new UserError(
        `sha256 mismatch for ${request.what}: expected ${request.sha256}, got ${actual} (from ${request.url}); ` +
          'the download was deleted and nothing was written to the output. If the source really changed, update the sha256 in the recipe.',
      );
    }
    const verified = final ?? cache.download(actual);
    await rename(partial, verified);
    return verified;
  }
  throw new UserError(
    `download of ${request.what} from ${request.url} failed ${attempts} times (${messageOf(lastError)}); ` +
      'the partial file is kept and the next build resumes it. Check the network, then run the build again.',
  );
}
