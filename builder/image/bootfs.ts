import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import type { Partition } from './partitions.ts';
import { settleTree } from './settle-tree.ts';

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

/**
 * Make the FAT filesystem anew at the partition's place and copy `dir` into it; then empty `dir`. The same files
 * give the same bytes (README "Reproducible images"): the partition is zeroed first (mkfs.fat leaves the data area
 * as it was), `--invariant` fixes the boot sector's and the volume label's times (the serial number stays the
 * base's, `-i`), mtools stamps every entry it makes with SOURCE_DATE_EPOCH and `-m` keeps the files' (clamped)
 * modification times, and each directory is copied in name order, one level at a time, instead of in the order the
 * build's filesystem happens to list it.
 */
export async function writeBootfs(image: string, partition: Partition, dir: string, info: FatInfo, sourceDateEpoch: number, log?: BuildLog): Promise<void> {
  await zeroRange(image, partition.start * 512, partition.size * 512, log);
  const args = ['--invariant', '-F', String(info.fatBits), '-s', String(info.sectorsPerCluster), '-i', info.serial, '--offset', String(partition.start)];
  if (info.label) args.push('-n', info.label);
  await run('mkfs.vfat', [...args, image, String(Math.floor((partition.size * 512) / 1024))], { log, what: 'rebuild the boot filesystem' });
  await settleTree(dir, sourceDateEpoch, 512);
  const env = { ...MTOOLS_ENV, SOURCE_DATE_EPOCH: String(sourceDateEpoch) };
  const target = fatTarget(image, partition);
  const copyLevel = async (from: string, to: string): Promise<void> => {
    const entries = (await readdir(from, { withFileTypes: true })).sort((a, b) => byteOrder(a.name, b.name));
    const files = entries.filter((e) => !e.isDirectory()).map((e) => join(from, e.name));
    if (files.length) {
      await run('mcopy', ['-p', '-m', '-i', target, ...files, `${to}/`], { log, env, what: 'copy the boot files into the boot partition (is it full?)' });
    }
    for (const sub of entries.filter((e) => e.isDirectory())) {
      await run('mmd', ['-i', target, `${to}/${sub.name}`], { log, env, what: `make ${to}/${sub.name} in the boot partition` });
      await copyLevel(join(from, sub.name), `${to}/${sub.name}`);
    }
  };
  await copyLevel(dir, '::');
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/** Zero a byte range of a file: a hole where the filesystem can punch one, else written zeros. */
async function zeroRange(file: string, offset: number, length: number, log?: BuildLog): Promise<void> {
  const punched = await run('fallocate', ['--punch-hole', '--keep-size', '--offset', String(offset), '--length', String(length), file], { log, allowFailure: true });
  if (punched.exitCode === 0) return;
  const handle = await open(file, 'r+');
  try {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < length; at += zeros.length) await handle.write(zeros, 0, Math.min(zeros.length, length - at), offset + at);
  } finally {
    await handle.close();
  }
}

/** Plain byte order: the same on every host, whatever its locale. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
