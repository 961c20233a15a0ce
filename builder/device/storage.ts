import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Whether the XFTP relay's quota fits on the card. The files it stores share the SD card with everything else
 * the Pi writes; the quota is the only limit the relay knows, and the card may be smaller than the recipe
 * assumed. A full card stops the SMP relays from writing their queue store logs and saving their messages, and
 * the journal and Tor's state from being written. Runs on the device.
 */

const KiB = 1024;
/** What stays free beyond the quota: the SMP relays' stores and saved messages, the journal, Tor's state. */
export const STORAGE_RESERVE_BYTES = 512 * KiB * KiB;

/** simplexmq's FileSize (FileTransfer/Description.hs): a number with gb, mb or kb (powers of 1024), or bytes. */
export function quotaBytes(quota: string): number {
  const match = /^(\d+)(gb|mb|kb)?$/.exec(quota);
  if (!match) throw new Error(`not a simplexmq file size: ${quota}`);
  const power = { kb: 1, mb: 2, gb: 3 }[match[2] as 'kb' | 'mb' | 'gb'] ?? 0;
  return Number(match[1]) * KiB ** power;
}

export interface QuotaCheck {
  ok: boolean;
  quotaBytes: number;
  /** What the relay already stores (counts against its quota, and is already on the card). */
  storedBytes: number;
  freeBytes: number;
  message: string;
}

const gib = (bytes: number) => `${(bytes / KiB ** 3).toFixed(1)} GiB`;

/**
 * The check itself, on numbers: the quota fits if what the relay may still add leaves the reserve free. With
 * `storedBytes` unknown (a caller that may not read the relay's files: the export unit), it is counted as nothing
 * stored, which can only make the verdict stricter.
 */
export function checkQuota(quota: string, storedBytes: number | undefined, freeBytes: number): QuotaCheck {
  const bytes = quotaBytes(quota);
  const stored = storedBytes ?? 0;
  const mayStillAdd = Math.max(0, bytes - stored);
  const ok = mayStillAdd + STORAGE_RESERVE_BYTES <= freeBytes;
  const storedText = storedBytes === undefined ? 'stored files not counted (only root may read them)' : `${gib(stored)} stored`;
  const message = ok
    ? `XFTP quota ${quota} fits: ${gib(freeBytes)} free on the card, ${storedText}`
    : `XFTP quota ${quota} is more than the card can hold: ${gib(freeBytes)} free, ${storedBytes === undefined ? 'stored files not counted' : `${gib(stored)} already stored`}, ` +
      `and ${gib(STORAGE_RESERVE_BYTES)} must stay free for the SMP relays' messages, the journal and Tor. Once the card is ` +
      'full the SMP relays can no longer save their queues and messages. Lower xftp.quota in the recipe and rebuild, or flash a larger card.';
  return { ok, quotaBytes: bytes, storedBytes: stored, freeBytes, message };
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesUnder(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

/** The check for the XFTP relay's files directory, as the card is now. */
export async function checkXftpQuota(quota: string, filesPath: string): Promise<QuotaCheck> {
  const fs = await statfs(filesPath);
  const stored = await bytesUnder(filesPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EACCES' || error.code === 'EPERM') return undefined;
    throw error;
  });
  return checkQuota(quota, stored, fs.bavail * fs.bsize);
}
