import { copyFile, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import type { BuildLog } from '../log.ts';
import type { Resources } from '../resources.ts';
import { attachPartition, waitForLoopsReleased } from './loop.ts';
import { mount, unmount } from './mounts.ts';
import { raspberryPiLayout, readPartitionTable } from './partitions.ts';
import { binfmtProblem } from './binfmt.ts';
import { extractBootfs, readFatInfo, writeBootfs } from './bootfs.ts';

export interface MountedImage {
  /** The root filesystem's mount point on the host. */
  root: string;
  /** Where the FAT partition is mounted inside the image: /boot/firmware (Bookworm and later) or /boot. */
  bootPath: string;
  /** Write the boot directory back into the FAT partition (and empty the directory). Call before release to keep changes. */
  commitBoot: (sourceDateEpoch: number) => Promise<void>;
  /** Undo only what the chroot needed (/proc, /sys, /dev, /run, /tmp, resolv.conf, policy-rc.d); the partitions stay mounted. */
  releaseChroot: () => Promise<void>;
  /**
   * Unmount everything, release the loop devices, and wait until the kernel has really let go of the image
   * (waitForLoopsReleased says why that can take a while, and refuses after two minutes): only then may the image
   * file be copied, resized or shrunk.
   */
  release: () => Promise<void>;
}

/** Where the image's own fstab mounts its FAT partition. */
export function bootMountPoint(fstab: string): string {
  for (const line of fstab.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[0]?.startsWith('#') || fields.length < 3) continue;
    if (fields[2] === 'vfat' && (fields[1] === '/boot/firmware' || fields[1] === '/boot')) return fields[1];
  }
  return '/boot/firmware';
}

/**
 * Mount an image for building: the root partition on its own loop device with the boot partition's files staged
 * in its boot directory (see bootfs.ts), /proc, /sys, /dev and
 * /dev/pts for maintainer scripts, tmpfs on /run and /tmp so nothing of the build stays there, the host's
 * resolv.conf for apt, and a policy-rc.d that forbids starting services. Each piece is registered with
 * `resources` and undone in reverse order, restoring resolv.conf exactly as it was.
 */
export async function mountImage(image: string, root: string, resources: Resources, log: BuildLog): Promise<MountedImage> {
  const problem = await binfmtProblem();
  if (problem) throw new UserError(problem);
  const layout = raspberryPiLayout(await readPartitionTable(image, log), image);
  const start = resources.count;
  const releaseUntilStart = async () => {
    await resources.releaseAll(start);
    await waitForLoopsReleased(image, `unmounting ${image}`, log);
  };
  const rootLoop = await attachPartition(image, layout.root, resources, log);
  await mkdir(root, { recursive: true });
  const mountAt = async (args: string[], target: string) => {
    await mount([...args, target], log);
    resources.hold(`mount ${target}`, () => unmount(target, log, root));
  };
  await mount(['-t', 'ext4', rootLoop.device, root], log);
  resources.hold(`mount ${root}`, () => unmount(root, log, root));
  const fstab = await readFile(join(root, 'etc/fstab'), 'utf8').catch(() => '');
  const bootPath = bootMountPoint(fstab);
  const bootDir = join(root, bootPath);
  await mkdir(bootDir, { recursive: true });
  if ((await readdir(bootDir)).length) {
    throw new UserError(`${bootPath} in the root filesystem of ${image} is not empty; the boot partition's files cannot be staged there`);
  }
  const fat = await readFatInfo(image, layout.boot, log);
  await extractBootfs(image, layout.boot, bootDir, log);
  const partitionsHeld = resources.count;
  await mountAt(['-t', 'proc', 'proc'], join(root, 'proc'));
  await mountAt(['-t', 'sysfs', 'sysfs'], join(root, 'sys'));
  await mountAt(['--bind', '/dev'], join(root, 'dev'));
  await mountAt(['--bind', '/dev/pts'], join(root, 'dev/pts'));
  await mountAt(['-t', 'tmpfs', 'tmpfs'], join(root, 'run'));
  await mountAt(['-t', 'tmpfs', 'tmpfs'], join(root, 'tmp'));
  await replaceResolvConf(root, resources);
  await installPolicyRcD(root, resources);
  return {
    root,
    bootPath,
    commitBoot: (sourceDateEpoch) => writeBootfs(image, layout.boot, bootDir, fat, sourceDateEpoch, log),
    releaseChroot: async () => {
      await resources.releaseAll(partitionsHeld);
    },
    release: releaseUntilStart,
  };
}

/** apt in the chroot resolves names with the host's resolver; the image's own resolv.conf comes back afterwards. */
async function replaceResolvConf(root: string, resources: Resources): Promise<void> {
  const path = join(root, 'etc/resolv.conf');
  let original: { kind: 'symlink'; target: string } | { kind: 'file'; content: Buffer } | { kind: 'none' };
  try {
    const info = await lstat(path);
    original = info.isSymbolicLink() ? { kind: 'symlink', target: await readlink(path) } : { kind: 'file', content: await readFile(path) };
  } catch {
    original = { kind: 'none' };
  }
  await rm(path, { force: true });
  await copyFile('/etc/resolv.conf', path).catch(() => writeFile(path, 'nameserver 127.0.0.1\n'));
  resources.hold(`resolv.conf of ${root}`, async () => {
    await rm(path, { force: true });
    if (original.kind === 'symlink') await symlink(original.target, path);
    else if (original.kind === 'file') await writeFile(path, original.content);
  });
}

/** Debian's invoke-rc.d and deb-systemd-invoke ask policy-rc.d before starting a service; 101 means "not allowed". */
async function installPolicyRcD(root: string, resources: Resources): Promise<void> {
  const path = join(root, 'usr/sbin/policy-rc.d');
  const existing = await readFile(path).catch(() => undefined);
  await writeFile(path, '#!/bin/sh\n# simplex-pi build: no service may start in the image while it is built.\nexit 101\n', { mode: 0o755 });
  resources.hold(`policy-rc.d of ${root}`, async () => {
    if (existing) await writeFile(path, existing, { mode: 0o755 });
    else await rm(path, { force: true });
  });
}
