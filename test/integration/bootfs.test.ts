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
    await writeBootfs(image, boot, staged, info);

    const after = await minfo(image);
    for (const field of [/cluster size: (\d+) sectors/, /serial number: (\S+)/, /disk label="([^"]*)"/, /disk type="([^"]*)"/]) {
      expect(field.exec(after)?.[1], String(field)).toBe(field.exec(before)?.[1]);
    }
    expect(await readdir(staged)).toEqual([]);
    const cmdline = await execa('mtype', ['-i', `${image}@@${BOOT_START * 512}`, '::/cmdline.txt'], { env: MTOOLS });
    expect(`${cmdline.stdout}\n`).toBe(await readFile(join(files, 'cmdline.txt'), 'utf8'));
  });
});
