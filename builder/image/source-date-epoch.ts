import { open } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import type { Partition } from './partitions.ts';

/**
 * SOURCE_DATE_EPOCH (reproducible-builds.org): the one time the build writes into the image. Every file time in
 * it is clamped to it, and the filesystems' own times are it. Chosen from the inputs, never from the clock, so the
 * same inputs give the same image on any day:
 * 1. the SOURCE_DATE_EPOCH environment variable, the convention every reproducible build honours;
 * 2. the recipe's `source_date_epoch`;
 * 3. the base's release date (Raspberry Pi OS, from Raspberry Pi Imager's list or the recipe's pin), 00:00 UTC;
 * 4. the last write time in the base's root filesystem superblock (the Debian base, a local file): part of the
 *    base image's bytes, so the same base gives the same time.
 */

export interface SourceDate {
  /** Seconds since 1970-01-01 UTC. */
  epoch: number;
  /** Where it came from, in words, for the build log and the manifest. */
  from: string;
}

/** `from` when the environment chose: a rebuild (rebuild-check) sets the same variable again. */
export const FROM_ENVIRONMENT = 'the SOURCE_DATE_EPOCH environment variable';

export function chooseSourceDate(input: { env?: string; recipe: number | null; releaseDate?: string; rootWrittenAt?: number }): SourceDate {
  if (input.env !== undefined && input.env !== '') {
    if (!/^\d+$/.test(input.env)) throw new UserError(`SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, not "${input.env}"; unset it or fix it`);
    return { epoch: Number(input.env), from: FROM_ENVIRONMENT };
  }
  if (input.recipe !== null) return { epoch: input.recipe, from: "the recipe's source_date_epoch" };
  if (input.releaseDate && /^\d{4}-\d{2}-\d{2}$/.test(input.releaseDate)) {
    return { epoch: Date.parse(`${input.releaseDate}T00:00:00Z`) / 1000, from: `the base's release date (${input.releaseDate})` };
  }
  if (input.rootWrittenAt) return { epoch: input.rootWrittenAt, from: "the last write time of the base's root filesystem" };
  throw new UserError(
    "cannot choose the image's SOURCE_DATE_EPOCH: the base has no release date and its root filesystem no write time; set `source_date_epoch` in the recipe",
  );
}

/** s_wtime of an ext4 superblock (bytes 0x30–0x33, and 0x274 for the high bits since 2038). */
export async function readRootWriteTime(image: string, root: Partition): Promise<number> {
  const handle = await open(image, 'r');
  try {
    const superblock = Buffer.alloc(1024);
    await handle.read(superblock, 0, 1024, root.start * 512 + 1024);
    if (superblock.readUInt16LE(0x38) !== 0xef53) throw new UserError(`partition ${root.number} of ${image} is not an ext4 filesystem (no superblock magic)`);
    return superblock.readUInt32LE(0x30) + superblock.readUInt8(0x274) * 2 ** 32;
  } finally {
    await handle.close();
  }
}
