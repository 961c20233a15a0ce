import { chmod, copyFile, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UPDATE_INITRAMFS_CONF, withInitramfsUpdatesOff } from '../../builder/image/initramfs.ts';
import { REPO, scratch } from '../helpers/env.ts';

// Debian trixie's initramfs-tools 0.148.4 file, as Raspberry Pi OS has it (update_initramfs=yes).
const DEBIAN_CONF = join(REPO, 'test/fixtures/initramfs/update-initramfs.conf');

async function imageRoot(): Promise<string> {
  const root = await scratch('initramfs');
  await mkdir(dirname(join(root, UPDATE_INITRAMFS_CONF)), { recursive: true });
  await copyFile(DEBIAN_CONF, join(root, UPDATE_INITRAMFS_CONF));
  await chmod(join(root, UPDATE_INITRAMFS_CONF), 0o640);
  return root;
}

describe('the packages stage runs apt with initramfs updates off, and puts the setting back', () => {
  it('apt sees update_initramfs=no; afterwards the file is byte for byte the base\'s, mode included', async () => {
    const root = await imageRoot();
    const conf = join(root, UPDATE_INITRAMFS_CONF);
    const seen = await withInitramfsUpdatesOff(root, async () => readFile(conf, 'utf8'));
    expect(seen).toMatch(/^update_initramfs=no$/m);
    expect(seen).not.toMatch(/^update_initramfs=yes$/m);
    expect(seen).toMatch(/^backup_initramfs=no$/m);
    expect((await readFile(conf)).equals(await readFile(DEBIAN_CONF))).toBe(true);
    expect(((await stat(conf)).mode & 0o777).toString(8)).toBe('640');
  });

  it('puts it back when apt fails, and passes the failure on', async () => {
    const root = await imageRoot();
    await expect(withInitramfsUpdatesOff(root, async () => Promise.reject(new Error('apt-get install failed')))).rejects.toThrow('apt-get install failed');
    expect((await readFile(join(root, UPDATE_INITRAMFS_CONF))).equals(await readFile(DEBIAN_CONF))).toBe(true);
  });

  it('leaves an image without initramfs-tools alone', async () => {
    const root = await scratch('initramfs');
    expect(await withInitramfsUpdatesOff(root, async () => 'ran')).toBe('ran');
    expect(await readdir(root)).toEqual([]);
  });
});
