import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';

export const BOOT_LABEL = 'RASPIFIRM';
export const ROOT_LABEL = 'RASPIROOT';
const MiB = 1024 * 1024;
const SECTOR = 512;
/** The first partition starts at 4 MiB: aligned for SD card erase blocks, like Raspberry Pi OS. */
const FIRST_SECTOR = (4 * MiB) / SECTOR;

export interface AssembleRequest {
  /** Root filesystem tree, without the boot partition's contents. */
  rootDir: string;
  /** Files of the FAT boot partition. */
  bootDir: string;
  output: string;
  bootMiB: number;
  rootMiB: number;
  log?: BuildLog;
}

/**
 * Make a Raspberry Pi disk image from two directory trees without loop devices or mounts: an MBR with a FAT32
 * boot partition 1 and an ext4 root partition 2, filesystems written in place at their offsets.
 */
export async function assembleImage(request: AssembleRequest): Promise<void> {
  const { log } = request;
  const bootSectors = (request.bootMiB * MiB) / SECTOR;
  const rootStart = FIRST_SECTOR + bootSectors;
  const rootSectors = (request.rootMiB * MiB) / SECTOR;
  const total = (rootStart + rootSectors) * SECTOR;
  const file = await open(request.output, 'w');
  await file.truncate(total);
  await file.close();
  const table = [
    'label: dos',
    'unit: sectors',
    `start=${FIRST_SECTOR}, size=${bootSectors}, type=c, bootable`,
    `start=${rootStart}, size=${rootSectors}, type=83`,
    '',
  ].join('\n');
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', request.output], { log, input: table, what: 'write the partition table' });
  await run('mkfs.vfat', ['-F', '32', '-n', BOOT_LABEL, '--offset', String(FIRST_SECTOR), request.output, String((request.bootMiB * MiB) / 1024)], {
    log,
    what: 'make the FAT boot filesystem',
  });
  const entries = await readdir(request.bootDir);
  if (entries.length) {
    await run('mcopy', ['-s', '-p', '-m', '-i', `${request.output}@@${FIRST_SECTOR * SECTOR}`, ...entries.map((e) => join(request.bootDir, e)), '::/'], {
      log,
      env: { MTOOLS_SKIP_CHECK: '1' },
      what: 'copy the boot files',
    });
  }
  await run(
    'mke2fs',
    ['-q', '-t', 'ext4', '-L', ROOT_LABEL, '-d', request.rootDir, '-E', `offset=${rootStart * SECTOR}`, request.output, `${request.rootMiB * 1024}k`],
    { log, what: 'make the ext4 root filesystem' },
  );
}

/** Disk use of a tree in MiB, as `du` counts it. */
export async function treeMiB(dir: string, log?: BuildLog): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1M', dir], { log, what: `measure ${dir}` });
  return Number(stdout.split(/\s/)[0]);
}
