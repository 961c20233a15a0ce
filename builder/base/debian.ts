import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { partialPath } from '../cache.ts';
import { run } from '../exec.ts';
import { hashOf, sha256File } from '../hash.ts';
import { assembleImage, treeMiB } from '../image/assemble.ts';
import { unmountAll } from '../image/mounts.ts';
import type { BaseSpec } from '../recipe/schema.ts';
import { treeDigest } from '../render/tree.ts';
import { loadStoredBase, saveStoredBaseRecord } from './store.ts';
import type { BaseContext, BaseImage } from './types.ts';

type DebianSpec = Extract<BaseSpec, { provider: 'debian' }>;

const here = dirname(fileURLToPath(import.meta.url));
export const DEBIAN_OVERLAY = join(here, '../../overlays/debian-base/rootfs');
const CUSTOMIZE_HOOK = join(here, 'debian/customize-hook.sh');

/**
 * A Raspberry Pi 3/4 bootable Debian: Debian's arm64 kernel and raspi-firmware (boot loader, device trees,
 * config.txt and cmdline.txt written by its kernel hooks), systemd, DHCP, time sync, and growing the root
 * filesystem on first boot. Everything the relays need comes later, in the packages stage.
 */
export const DEBIAN_BASE_PACKAGES = [
  'systemd-sysv',
  'udev',
  'kmod',
  'linux-image-arm64',
  'raspi-firmware',
  'initramfs-tools',
  'e2fsprogs',
  'dosfstools',
  'cloud-guest-utils',
  'systemd-timesyncd',
  'systemd-resolved',
  'iproute2',
];

export const DEBIAN_BOOT_MIB = 512;

interface DebianMeta {
  suite: string;
  mirror: string;
  builtAt: string;
}

export async function debianBaseKey(spec: DebianSpec): Promise<string> {
  return hashOf({
    version: 1,
    suite: spec.suite,
    mirror: spec.mirror,
    security: spec.security_mirror,
    packages: DEBIAN_BASE_PACKAGES,
    overlay: await treeDigest(DEBIAN_OVERLAY),
    hook: await readFile(CUSTOMIZE_HOOK, 'utf8'),
  }).slice(0, 24);
}

function mirrors(spec: DebianSpec): string[] {
  const components = 'main non-free-firmware';
  return [
    `deb ${spec.mirror} ${spec.suite} ${components}`,
    `deb ${spec.mirror} ${spec.suite}-updates ${components}`,
    `deb ${spec.security_mirror} ${spec.suite}-security ${components}`,
  ];
}

export async function debianBase(spec: DebianSpec, ctx: BaseContext): Promise<BaseImage> {
  const key = await debianBaseKey(spec);
  const image = ctx.cache.base(`debian-${spec.suite}-${key}`);
  const describe = (sha256: string, meta: DebianMeta): BaseImage => ({
    provider: 'debian',
    path: image,
    sha256,
    description: `Debian ${meta.suite} arm64 for Raspberry Pi (built ${meta.builtAt})`,
    url: meta.mirror,
    suite: meta.suite,
    builtAt: meta.builtAt,
  });
  const stored = await loadStoredBase<DebianMeta>(image, ctx.log);
  if (stored) return describe(stored.sha256, stored.meta);

  const rootfs = join(ctx.workDir, 'debian-rootfs');
  const bootDir = join(ctx.workDir, 'debian-bootfs');
  const release = ctx.resources.hold(`Debian root filesystem ${rootfs}`, async () => {
    // mmdebstrap mounts /proc, /sys and /dev inside; a killed run can leave them.
    await unmountAll(rootfs, ctx.log);
    await rm(rootfs, { recursive: true, force: true });
    await rm(bootDir, { recursive: true, force: true });
  });
  try {
    await mkdir(ctx.workDir, { recursive: true });
    ctx.status?.(`mmdebstrap ${spec.suite} arm64 (a few minutes)`);
    await run(
      'mmdebstrap',
      [
        '--architectures=arm64',
        '--variant=apt',
        `--include=${DEBIAN_BASE_PACKAGES.join(',')}`,
        // The initramfs configuration must be in place before the kernel package builds the first initramfs.
        `--setup-hook=sync-in ${DEBIAN_OVERLAY} /`,
        `--customize-hook=sync-in ${DEBIAN_OVERLAY} /`,
        `--customize-hook=${CUSTOMIZE_HOOK}`,
        spec.suite,
        rootfs,
        ...mirrors(spec),
      ],
      { log: ctx.log, what: `build the Debian ${spec.suite} base with mmdebstrap`, timeout: 40 * 60 * 1000 },
    );
    // The boot partition's files live in /boot/firmware of the tree; they go to the FAT partition instead.
    await rename(join(rootfs, 'boot/firmware'), bootDir);
    await mkdir(join(rootfs, 'boot/firmware'));
    const contentMiB = await treeMiB(rootfs, ctx.log);
    // Room for ext4's own metadata and a little slack; the prepare stage grows it for the build anyway.
    const rootMiB = Math.ceil((contentMiB * 1.15 + 128) / 4) * 4;
    await mkdir(dirname(image), { recursive: true });
    const temporary = partialPath(image);
    ctx.status?.('assembling the disk image');
    await assembleImage({ rootDir: rootfs, bootDir, output: temporary, bootMiB: DEBIAN_BOOT_MIB, rootMiB, log: ctx.log });
    const sha256 = await sha256File(temporary);
    await rename(temporary, image);
    const meta: DebianMeta = { suite: spec.suite, mirror: spec.mirror, builtAt: new Date().toISOString().slice(0, 10) };
    await saveStoredBaseRecord(image, sha256, meta);
    return describe(sha256, meta);
  } finally {
    await release();
  }
}
