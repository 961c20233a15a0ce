import { execFileSync } from 'node:child_process';
import { writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBinfmtEntry } from '../../builder/image/binfmt.ts';
import { parseLoopList } from '../../builder/image/loop.ts';
import { bootMountPoint } from '../../builder/image/mount-image.ts';
import { parseMountinfo } from '../../builder/image/mounts.ts';
import { parsePartitionTable, raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { scratch } from '../helpers/env.ts';

async function imageWith(table: string): Promise<string> {
  const path = join(await scratch('pt'), 'disk.img');
  await writeFile(path, '');
  await truncate(path, 64 * 1024 * 1024);
  execFileSync('sfdisk', ['--quiet', path], { input: table });
  return path;
}

describe('partition tables', () => {
  it('reads a Raspberry Pi layout written by the real sfdisk', async () => {
    const image = await imageWith('label: dos\nstart=8192, size=16384, type=c, bootable\nstart=24576, type=83\n');
    const table = await readPartitionTable(image);
    expect(table.label).toBe('dos');
    const { boot, root } = raspberryPiLayout(table);
    expect(boot).toMatchObject({ number: 1, start: 8192, size: 16384, type: 'c' });
    expect(root).toMatchObject({ number: 2, start: 24576, size: 131072 - 24576, type: '83' });
  });

  it('refuses layouts the pipeline cannot work on, saying what it found', async () => {
    const one = await imageWith('label: dos\nstart=8192, type=83\n');
    expect(() => raspberryPiLayout(parsePartitionTable(execFileSync('sfdisk', ['--json', one]).toString()), 'one.img')).toThrow(
      'one.img: expected a FAT boot partition 1 and a root partition 2, found 1 partition(s)',
    );
    const three = await imageWith('label: dos\nstart=8192, size=8192, type=c\nstart=16384, size=8192, type=83\nstart=24576, type=83\n');
    expect(() => raspberryPiLayout(parsePartitionTable(execFileSync('sfdisk', ['--json', three]).toString()))).toThrow(/exactly two partitions/);
  });

  it('says so when there is no partition table', () => {
    expect(() => parsePartitionTable('', 'x.img')).toThrow('x.img has no readable partition table');
  });
});

describe('host state parsers', () => {
  it('decodes mount points with escaped spaces, in kernel order', () => {
    const text = [
      '22 1 8:1 / / rw - ext4 /dev/sda1 rw',
      '90 22 7:0 / /var/cache/simplex\\040pi/work/1/root rw - ext4 /dev/loop0 rw',
      '91 90 0:5 / /var/cache/simplex\\040pi/work/1/root/proc rw - proc proc rw',
    ].join('\n');
    expect(parseMountinfo(text)).toEqual(['/', '/var/cache/simplex pi/work/1/root', '/var/cache/simplex pi/work/1/root/proc']);
  });

  it('reads losetup --json and strips "(deleted)"', () => {
    const json = JSON.stringify({ loopdevices: [{ name: '/dev/loop3', 'back-file': '/c/work/1/work.img (deleted)' }, { name: '/dev/loop4', 'back-file': null }] });
    expect(parseLoopList(json)).toEqual([
      { device: '/dev/loop3', backingFile: '/c/work/1/work.img' },
      { device: '/dev/loop4', backingFile: '' },
    ]);
    expect(parseLoopList('')).toEqual([]);
  });

  it('reads a binfmt_misc entry', () => {
    const entry = parseBinfmtEntry('enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n');
    expect(entry).toEqual({ enabled: true, interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P', flags: 'PF' });
    expect(parseBinfmtEntry('disabled\nflags: P\n').enabled).toBe(false);
  });

  it('finds where the image mounts its FAT partition', () => {
    expect(bootMountPoint('PARTUUID=1-01  /boot/firmware  vfat    defaults          0       2\n')).toBe('/boot/firmware');
    expect(bootMountPoint('# old\n/dev/mmcblk0p1  /boot  vfat  defaults  0  2\n')).toBe('/boot');
    expect(bootMountPoint('')).toBe('/boot/firmware');
  });
});
