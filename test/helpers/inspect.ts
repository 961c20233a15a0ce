import { fatTarget } from '../../builder/image/bootfs.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { attachPartition, listLoops } from '../../builder/image/loop.ts';
import { mountPoints, unmount } from '../../builder/image/mounts.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { Resources } from '../../builder/resources.ts';

export interface Inspected {
  root: string;
  /** Files of the FAT boot partition, read with mtools. */
  bootFiles: string[];
  readBoot: (name: string) => Promise<string>;
}

/** Mount a built image's root filesystem read-only, run `fn`, release everything. */
export async function inspectImage<T>(image: string, fn: (image: Inspected) => Promise<T>): Promise<T> {
  const resources = new Resources();
  const root = await mkdtemp(join(tmpdir(), 'spi-inspect-'));
  try {
    const { boot, root: rootPart } = raspberryPiLayout(await readPartitionTable(image));
    const loop = await attachPartition(image, rootPart, resources);
    await execa('mount', ['-o', 'ro', '-t', 'ext4', loop.device, root]);
    resources.hold('inspect mount', () => unmount(root));
    const target = fatTarget(image, boot);
    const env = { MTOOLS_SKIP_CHECK: '1' };
    const listing = await execa('mdir', ['-/', '-b', '-a', '-i', target, '::/'], { env });
    const bootFiles = listing.stdout.split('\n').filter(Boolean).map((l) => l.replace(/^::\//, ''));
    const readBoot = async (name: string) => (await execa('mtype', ['-i', target, `::/${name}`], { env })).stdout;
    return await fn({ root, bootFiles, readBoot });
  } finally {
    await resources.releaseAll();
    await rm(root, { recursive: true, force: true });
  }
}

/** Mounts and loop devices that belong to a cache directory: after any build, there must be none. */
export async function heldUnder(cacheRoot: string): Promise<{ mounts: string[]; loops: string[] }> {
  const mounts = (await mountPoints()).filter((m) => m.startsWith(`${cacheRoot}/`));
  const loops = (await listLoops()).filter((l) => l.backingFile.startsWith(`${cacheRoot}/`)).map((l) => `${l.device} ${l.backingFile}`);
  return { mounts, loops };
}
