import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { extractBootfs, readFatInfo, writeBootfs } from '../../builder/image/bootfs.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { scratch } from '../helpers/env.ts';

const MTOOLS = { MTOOLS_SKIP_CHECK: '1' };
// The mtools target `image@@offset` is written out here rather than taken from bootfs.ts's fatTarget: this test
// checks bootfs.ts against mtools, so it names the partition the way mtools documents it.
const BOOT_START = 16384;

/** `minfo` of partition 1, as the real mtools prints it. */
async function minfo(image: string): Promise<string> {
  return (await execa('minfo', ['-i', `${image}@@${BOOT_START * 512}`, '::'], { env: MTOOLS })).stdout;
}

describe('the boot partition rebuilt by the build keeps what the base had', () => {
  it("keeps pi-gen's FAT: 1 sector per cluster, label bootfs, volume id, and the files", { timeout: 60_000 }, async () => {
    const dir = await scratch('bootfs');
    const image = join(dir, 'base.img');
    await execa('truncate', ['-s', '600M', image]);
    // pi-gen export-image/prerun.sh: `mkdosfs -n bootfs -F 32 -s 1 -v`, 512 MiB at 8 MiB.
    await execa('sfdisk', ['--quiet', image], { input: `label: dos\nunit: sectors\nstart=${BOOT_START}, size=1048576, type=c\nstart=1064960, type=83\n` });
    await execa('mkfs.vfat', ['-F', '32', '-s', '1', '-n', 'bootfs', '-i', '1A2B3C4D', '--offset', String(BOOT_START), image, String(512 * 1024)]);
    const files = join(dir, 'files');
    await mkdir(join(files, 'overlays'), { recursive: true });
    await writeFile(join(files, 'cmdline.txt'), 'console=serial0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n');
    await writeFile(join(files, 'overlays/README'), 'overlays\n');
    await execa('mcopy', ['-s', '-i', `${image}@@${BOOT_START * 512}`, join(files, 'cmdline.txt'), join(files, 'overlays'), '::/'], { env: MTOOLS });
    const before = await minfo(image);
    expect(before).toMatch(/cluster size: 1 sectors/);

    const { boot } = raspberryPiLayout(await readPartitionTable(image), image);
    const info = await readFatInfo(image, boot);
    const staged = join(dir, 'staged');
    await mkdir(staged);
    await extractBootfs(image, boot, staged);
    await writeBootfs(image, boot, staged, info, 1_700_000_000);

    const after = await minfo(image);
    for (const field of [/cluster size: (\d+) sectors/, /serial number: (\S+)/, /disk label="([^"]*)"/, /disk type="([^"]*)"/]) {
      expect(field.exec(after)?.[1], String(field)).toBe(field.exec(before)?.[1]);
    }
    expect(await readdir(staged)).toEqual([]);
    const cmdline = await execa('mtype', ['-i', `${image}@@${BOOT_START * 512}`, '::/cmdline.txt'], { env: MTOOLS });
    expect(`${cmdline.stdout}\n`).toBe(await readFile(join(files, 'cmdline.txt'), 'utf8'));
  });

  it('the same files give the same partition bytes: whatever their order on disk, the clock, or what the partition held before', { timeout: 60_000 }, async () => {
    const dir = await scratch('bootfs-same');
    const makeImage = async (name: string, leftover: boolean) => {
      const image = join(dir, name);
      await execa('truncate', ['-s', '80M', image]);
      await execa('sfdisk', ['--quiet', image], { input: `label: dos\nunit: sectors\nstart=${BOOT_START}, size=131072, type=c\nstart=147456, type=83\n` });
      await execa('mkfs.vfat', ['-F', '32', '-s', '1', '-n', 'bootfs', '-i', '1A2B3C4D', '--offset', String(BOOT_START), image, String(64 * 1024)]);
      // A file the base had and the build removed: its clusters must not stay in the image.
      if (leftover) await execa('mcopy', ['-i', `${image}@@${BOOT_START * 512}`, '-', '::/old.bin'], { env: MTOOLS, input: Buffer.alloc(300_000, 7) });
      return image;
    };
    const stage = async (name: string, order: string[]) => {
      const staged = join(dir, name);
      await mkdir(join(staged, 'overlays'), { recursive: true });
      for (const file of order) await writeFile(join(staged, file), `${file}\n`);
      return staged;
    };
    const files = ['config.txt', 'overlays/disable-bt.dtbo', 'cmdline.txt', 'overlays/README', 'user-data'];
    const first = await makeImage('first.img', false);
    const second = await makeImage('second.img', true);
    const { boot } = raspberryPiLayout(await readPartitionTable(first), first);
    const info = await readFatInfo(first, boot);
    await writeBootfs(first, boot, await stage('a', files), info, 1_750_000_000);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await writeBootfs(second, boot, await stage('b', [...files].reverse()), info, 1_750_000_000);
    const bytes = async (image: string) => (await readFile(image)).subarray(BOOT_START * 512, (BOOT_START + 131072) * 512);
    expect((await bytes(second)).equals(await bytes(first))).toBe(true);
    // Every entry carries the epoch (2025-06-15 UTC), not the day it was written.
    const listing = (await execa('mdir', ['-i', `${first}@@${BOOT_START * 512}`, '::/'], { env: MTOOLS })).stdout;
    expect(listing).toMatch(/cmdline\s+txt\s+\d+ 2025-06-15/);
    expect(listing).not.toContain('old');
  });
});
