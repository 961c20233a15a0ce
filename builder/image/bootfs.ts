import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import type { Partition } from './partitions.ts';

/**
 * The FAT boot partition is read and written with mtools, in user space, never mounted: not every build host's
 * kernel has vfat (this project's machines do not), and a mount would add one more thing to leak on a crash.
 * During the build its files live in the root filesystem's /boot/firmware directory, where maintainer scripts
 * (raspi-firmware, kernel hooks) expect them; `writeBootfs` rebuilds the partition from that directory with the
 * same FAT type, cluster size, label and serial number (volume id), and empties the directory again.
 */

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' };

export interface FatInfo {
  fatBits: 12 | 16 | 32;
  /** Sectors per cluster: pi-gen makes Raspberry Pi OS's FAT with `-s 1`; mkfs.fat would pick 8 for 512 MiB. */
  sectorsPerCluster: number;
  label: string;
  serial: string;
}

/**
 * How mtools names a partition of an image file: the file and the partition's byte offset. The one place that
 * writes `image@@offset`; everything that reads or writes a FAT partition with mtools (assemble, inspect-base, the
 * tests' helpers) calls it.
 */
export function fatTarget(image: string, partition: Pick<Partition, 'start'>): string {
  return `${image}@@${partition.start * 512}`;
}

export function parseMinfo(text: string): FatInfo {
  const serial = /serial number:\s*([0-9A-Fa-f]{8})/.exec(text)?.[1];
  const label = /disk label="([^"]*)"/.exec(text)?.[1]?.trim() ?? '';
  const type = /disk type="FAT(12|16|32)\s*"/.exec(text)?.[1];
  const cluster = /cluster size:\s*(\d+) sectors/.exec(text)?.[1];
  if (!serial || !cluster) throw new UserError('the boot partition is not a FAT filesystem mtools can read (no serial number or cluster size)');
  // FAT12/16 boot sectors carry the type at a different place; minfo prints it as "disk type" for both.
  const fatBits = (type ? Number(type) : /Big fatlen=/.test(text) ? 32 : 16) as FatInfo['fatBits'];
  return { fatBits, sectorsPerCluster: Number(cluster), label: label === 'NO NAME' ? '' : label, serial: serial.toUpperCase() };
}

export async function readFatInfo(image: string, partition: Partition, log?: BuildLog): Promise<FatInfo> {
  const { stdout } = await run('minfo', ['-i', fatTarget(image, partition), '::'], { log, env: MTOOLS_ENV, what: 'read the boot partition' });
  return parseMinfo(stdout);
}

/** Copy every file of the boot partition (hidden ones too) into `dir`, keeping timestamps. */
export async function extractBootfs(image: string, partition: Partition, dir: string, log?: BuildLog): Promise<void> {
  const { stdout } = await run('mdir', ['-b', '-a', '-i', fatTarget(image, partition), '::/'], { log, env: MTOOLS_ENV, allowFailure: true });
  if (!stdout.trim()) return;
  await run('mcopy', ['-s', '-p', '-m', '-n', '-i', fatTarget(image, partition), '::*', `${dir}/`], { log, env: MTOOLS_ENV, what: 'copy the boot partition out of the image' });
}

/** Make the FAT filesystem anew at the partition's place and copy `dir` into it; then empty `dir`. */
export async function writeBootfs(image: string, partition: Partition, dir: string, info: FatInfo, log?: BuildLog): Promise<void> {
  const args = ['-F', String(info.fatBits), '-s', String(info.sectorsPerCluster), '-i', info.serial, '--offset', String(partition.start)];
  if (info.label) args.push('-n', info.label);
  await run('mkfs.vfat', [...args, image, String(Math.floor((partition.size * 512) / 1024))], { log, what: 'rebuild the boot filesystem' });
  const entries = await readdir(dir);
  if (entries.length) {
    await run('mcopy', ['-s', '-p', '-m', '-i', fatTarget(image, partition), ...entries.map((e) => join(dir, e)), '::/'], {
      log,
      env: MTOOLS_ENV,
      what: 'copy the boot files into the boot partition (is it full?)',
    });
  }
  for (const entry of entries) await rm(join(dir, entry), { recursive: true, force: true });
}
