import { chmod, lstat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Package installs in the image must not rebuild its initramfs. A dependency upgrade (udev, kmod, busybox,
 * firmware) triggers update-initramfs, which in a loop-mounted qemu chroot is slow at best and, with Raspberry
 * Pi OS's `MODULES=dep`, picks modules from the build host's devices or fails ("failed to determine device for
 * /"). pi-gen builds with `update_initramfs=no` for the same reason and sets it back for the card. "no" still lets
 * a kernel upgrade make its own initramfs (update-initramfs.conf(5): "disables any update to initramfs beside
 * kernel upgrade"); the initramfs the base shipped stays as it is.
 */
export const UPDATE_INITRAMFS_CONF = '/etc/initramfs-tools/update-initramfs.conf';

/** The file with `update_initramfs=no`, everything else as it was. */
export function initramfsUpdatesOff(conf: string): string {
  const line = /^update_initramfs=.*$/m;
  return line.test(conf) ? conf.replace(line, 'update_initramfs=no') : `${conf.replace(/\n?$/, '\n')}update_initramfs=no\n`;
}

/**
 * Run `fn` with initramfs updates off in the mounted image at `root`; the file is put back byte for byte (and its
 * mode) whatever `fn` does. An image without initramfs-tools is left alone.
 */
export async function withInitramfsUpdatesOff<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const path = join(root, UPDATE_INITRAMFS_CONF);
  const info = await lstat(path).catch(() => undefined);
  if (!info?.isFile()) return fn();
  const original = await readFile(path);
  await writeFile(path, initramfsUpdatesOff(original.toString('utf8')));
  try {
    return await fn();
  } finally {
    await writeFile(path, original);
    await chmod(path, info.mode & 0o7777);
  }
}
