import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.ts';
import { fatTarget } from './bootfs.ts';
import type { BuildLog } from '../log.ts';

export const BOOT_LABEL = 'RASPIFIRM';
export const ROOT_LABEL = 'RASPIROOT';
const MiB = 1024 * 1024;
const SECTOR = 512;
/** An MBR's first 440 bytes are boot code; the disk identifier and the partition table follow. */
export const MBR_BOOT_CODE_BYTES = 440;

export interface AssembleRequest {
  /** Root filesystem tree, without the boot partition's contents. */
  rootDir: string;
  /** Files of the FAT boot partition. */
  bootDir: string;
  output: string;
  bootMiB: number;
  rootMiB: number;
  log?: BuildLog;
  /**
   * How the layout differs from the Debian base's (defaults): Raspberry Pi OS's pi-gen starts partition 1 at
   * 8 MiB, labels them bootfs/rootfs, makes FAT32 with one sector per cluster, gives the MBR a random disk
   * identifier and turns some ext4 features off or on.
   */
  layout?: Partial<DiskLayout>;
}

export interface DiskLayout {
  firstSectorMiB: number;
  bootLabel: string;
  rootLabel: string;
  /** mkfs.fat -s; undefined lets mkfs.fat choose. */
  fatSectorsPerCluster?: number;
  /** mke2fs -O, e.g. ['^huge_file', 'orphan_file']. */
  ext4Features: string[];
  /** MBR disk identifier, 8 hex digits; undefined lets sfdisk choose one at random. */
  diskId?: string;
  /**
   * MBR boot code (MBR_BOOT_CODE_BYTES); undefined leaves sfdisk's zeros. pi-gen's `parted mklabel msdos` writes
   * parted's, and it matters on a card: parted keeps an MBR's disk identifier only when boot code is present,
   * else writes a new random one, so a first-boot `parted resizepart` would re-key the disk behind cmdline.txt.
   */
  bootCode?: Buffer;
}

/** The Debian base's: partition 1 at 4 MiB (aligned for SD card erase blocks), Debian's raspi labels. */
const DEBIAN_LAYOUT: DiskLayout = { firstSectorMiB: 4, bootLabel: BOOT_LABEL, rootLabel: ROOT_LABEL, ext4Features: [] };

/**
 * Make a Raspberry Pi disk image from two directory trees without loop devices or mounts: an MBR with a FAT32
 * boot partition 1 and an ext4 root partition 2, filesystems written in place at their offsets.
 */
export async function assembleImage(request: AssembleRequest): Promise<void> {
  const { log } = request;
  const layout: DiskLayout = { ...DEBIAN_LAYOUT, ...request.layout };
  const firstSector = (layout.firstSectorMiB * MiB) / SECTOR;
  const bootSectors = (request.bootMiB * MiB) / SECTOR;
  const rootStart = firstSector + bootSectors;
  const rootSectors = (request.rootMiB * MiB) / SECTOR;
  const total = (rootStart + rootSectors) * SECTOR;
  const file = await open(request.output, 'w');
  await file.truncate(total);
  await file.close();
  const table = [
    'label: dos',
    ...(layout.diskId ? [`label-id: 0x${layout.diskId}`] : []),
    'unit: sectors',
    `start=${firstSector}, size=${bootSectors}, type=c, bootable`,
    `start=${rootStart}, size=${rootSectors}, type=83`,
    '',
  ].join('\n');
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', request.output], { log, input: table, what: 'write the partition table' });
  if (layout.bootCode) await writeMbrBootCode(request.output, layout.bootCode);
  const cluster = layout.fatSectorsPerCluster === undefined ? [] : ['-s', String(layout.fatSectorsPerCluster)];
  await run('mkfs.vfat', ['-F', '32', ...cluster, '-n', layout.bootLabel, '--offset', String(firstSector), request.output, String((request.bootMiB * MiB) / 1024)], {
    log,
    what: 'make the FAT boot filesystem',
  });
  const entries = await readdir(request.bootDir);
  if (entries.length) {
    await run('mcopy', ['-s', '-p', '-m', '-i', fatTarget(request.output, { start: firstSector }), ...entries.map((e) => join(request.bootDir, e)), '::/'], {
      log,
      env: { MTOOLS_SKIP_CHECK: '1' },
      what: 'copy the boot files',
    });
  }
  await run(
    'mke2fs',
    ['-q', '-t', 'ext4', '-L', layout.rootLabel, ...(layout.ext4Features.length ? ['-O', layout.ext4Features.join(',')] : []), '-d', request.rootDir, '-E', `offset=${rootStart * SECTOR}`, request.output, `${request.rootMiB * 1024}k`],
    { log, what: 'make the ext4 root filesystem' },
  );
}

async function writeMbrBootCode(image: string, code: Buffer): Promise<void> {
  if (code.length !== MBR_BOOT_CODE_BYTES) throw new Error(`MBR boot code must be ${MBR_BOOT_CODE_BYTES} bytes, got ${code.length}`);
  const file = await open(image, 'r+');
  try {
    await file.write(code, 0, MBR_BOOT_CODE_BYTES, 0);
  } finally {
    await file.close();
  }
}

/** The boot code in front of an image's partition table. */
export async function readMbrBootCode(image: string): Promise<Buffer> {
  const code = Buffer.alloc(MBR_BOOT_CODE_BYTES);
  const file = await open(image, 'r');
  try {
    await file.read(code, 0, MBR_BOOT_CODE_BYTES, 0);
  } finally {
    await file.close();
  }
  return code;
}

/** Disk use of a tree in MiB, as `du` counts it. */
export async function treeMiB(dir: string, log?: BuildLog): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1M', dir], { log, what: `measure ${dir}` });
  return Number(stdout.split(/\s/)[0]);
}
