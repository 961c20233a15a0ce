import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { hashOf, sha256File } from '../../builder/hash.ts';
import { MBR_BOOT_CODE_BYTES, assembleImage, treeMiB } from '../../builder/image/assemble.ts';
import { DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR } from '../../builder/recipe/schema.ts';
import { treeDigest } from '../../builder/render/tree.ts';
import { REPO, TEST_CACHE } from './env.ts';
import type { TestServer } from './http-server.ts';

/**
 * A Raspberry Pi OS Lite (Trixie, arm64) look-alike, built from Debian trixie arm64 packages with pi-gen's
 * layout and first-boot behaviour, for tests that cannot download Raspberry Pi OS (downloads.raspberrypi.com
 * is not reachable here). The Raspberry Pi-only pieces are our own small stand-ins
 * (test/fixtures/raspios-lookalike/packages, each named "STAND-IN"); the kernel is Debian's, so the image
 * boots in qemu-system-aarch64 -M virt instead of on a Pi. What it reproduces, and what it cannot, is listed
 * in test/fixtures/raspios-lookalike/README.md.
 */

export const LOOKALIKE = join(REPO, 'test/fixtures/raspios-lookalike');
/** What pi-gen's stage0–2 install that Debian has (linux-image-arm64 standing in for linux-image-rpi-v8). */
export const LOOKALIKE_PACKAGES = [
  'systemd-sysv', 'udev', 'kmod', 'systemd-timesyncd', 'network-manager', 'netplan.io', 'cloud-init',
  'openssh-server', 'sudo', 'avahi-daemon', 'initramfs-tools', 'parted', 'fdisk', 'dosfstools', 'e2fsprogs',
  'locales', 'ca-certificates', 'tzdata', 'linux-image-arm64', 'iproute2', 'whiptail', 'curl', 'rsync',
  // Imager's user-data sets the keyboard; cloud-init's keyboard module restarts console-setup.service.
  'console-setup', 'keyboard-configuration',
];
const STANDIN_PACKAGES = ['raspberrypi-sys-mods', 'userconf-pi', 'rpi-cloud-init-mods'];
/** pi-gen's export-image/prerun.sh: p1 at 8 MiB, 512 MiB of FAT32 with one sector per cluster. */
const BOOT_MIB = 512;
/**
 * Trixie's mke2fs defaults minus what pi-gen turns off (huge_file, 64bit); orphan_file and metadata_csum_seed
 * are Trixie's (e2fsprogs 1.47) and what an older build host refuses.
 */
export const LOOKALIKE_EXT4_FEATURES = ['^huge_file', '^64bit', 'metadata_csum_seed', 'orphan_file'];

export interface Lookalike {
  /** The raw image (read-only: tests copy it). */
  image: string;
  xz: string;
  sha256: string;
  xzSha256: string;
  xzSize: number;
  size: number;
  diskId: string;
  /** Seconds the build took, or 0 when it came from the cache. */
  buildSeconds: number;
}

/** What the root filesystem tree is made from (everything in the fixture but the boot partition's files). */
const ROOTFS_INPUTS = ['setup', 'rootfs', 'packages', 'customize.sh'];

async function rootfsKey(): Promise<string> {
  const trees = await Promise.all(ROOTFS_INPUTS.map(async (name) => [name, name.endsWith('.sh') ? await readFile(join(LOOKALIKE, name), 'utf8') : await treeDigest(join(LOOKALIKE, name))]));
  return hashOf({ version: 1, packages: LOOKALIKE_PACKAGES, trees, mirror: DEBIAN_MIRROR, security: DEBIAN_SECURITY_MIRROR }).slice(0, 20);
}

/** Bump when the layout step (disk id, fstab, cmdline.txt, machine-id, partitions, xz) changes. */
const LAYOUT_VERSION = 2;

async function imageKey(rootfs: string): Promise<string> {
  return hashOf({ rootfs, layout: LAYOUT_VERSION, bootfs: await treeDigest(join(LOOKALIKE, 'bootfs')), features: LOOKALIKE_EXT4_FEATURES }).slice(0, 20);
}

/** The stand-in packages as .deb files (owned by root, modes as in the repository). */
async function buildStandinDebs(dir: string): Promise<string[]> {
  const debs: string[] = [];
  await mkdir(dir, { recursive: true });
  for (const name of STANDIN_PACKAGES) {
    const deb = join(dir, `${name}.deb`);
    await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', join(LOOKALIKE, 'packages', name), deb]);
    debs.push(deb);
  }
  return debs;
}

/**
 * The slow half (tens of minutes under qemu-user): mmdebstrap of Debian trixie arm64 with the packages,
 * the stand-ins and pi-gen's finishing steps, kept as a tarball so layout changes do not redo it.
 */
/** Where the root filesystem tarball of the current fixture is (or will be) cached. */
export async function lookalikeRootfsPath(cache = TEST_CACHE): Promise<string> {
  return join(cache, 'raspios-lookalike', `rootfs-${await rootfsKey()}.tar`);
}

async function lookalikeRootfs(cache: string): Promise<string> {
  const tarball = await lookalikeRootfsPath(cache);
  if (existsSync(tarball)) return tarball;
  await mkdir(dirname(tarball), { recursive: true });
  const work = await mkdtemp(join(dirname(tarball), 'rootfs-work-'));
  try {
    const debs = await buildStandinDebs(join(work, 'debs'));
    await execa(
      'mmdebstrap',
      [
        '--architectures=arm64',
        '--variant=apt',
        // pi-gen keeps the package lists; the pipeline's packages stage updates them anyway.
        '--skip=cleanup/apt/lists',
        `--include=${LOOKALIKE_PACKAGES.join(',')}`,
        // A short module list while building (see setup/etc/initramfs-tools/conf.d/lookalike.conf).
        `--setup-hook=sync-in ${join(LOOKALIKE, 'setup')} /`,
        `--customize-hook=sync-in ${join(LOOKALIKE, 'rootfs')} /`,
        // customize.sh installs them (apt cannot reach .deb paths outside the chroot in root mode).
        `--customize-hook=copy-in ${debs.join(' ')} /tmp`,
        `--customize-hook=${join(LOOKALIKE, 'customize.sh')}`,
        'trixie',
        join(work, 'rootfs.tar'),
        `deb ${DEBIAN_MIRROR} trixie main non-free-firmware`,
        `deb ${DEBIAN_MIRROR} trixie-updates main non-free-firmware`,
        `deb ${DEBIAN_SECURITY_MIRROR} trixie-security main non-free-firmware`,
      ],
      { timeout: 90 * 60 * 1000 },
    );
    await rename(join(work, 'rootfs.tar'), tarball);
    return tarball;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Build (or take from the test cache) the look-alike image and its .img.xz. */
export async function raspiosLookalike(cache = TEST_CACHE): Promise<Lookalike> {
  const started = Date.now();
  const tarball = await lookalikeRootfs(cache);
  const dir = join(cache, 'raspios-lookalike', await imageKey(tarball));
  const recordPath = join(dir, 'lookalike.json');
  if (existsSync(recordPath)) return { ...(JSON.parse(await readFile(recordPath, 'utf8')) as Lookalike), buildSeconds: 0 };

  const work = join(dir, 'work');
  const rootfs = join(work, 'rootfs');
  const bootDir = join(work, 'bootfs');
  await rm(work, { recursive: true, force: true });
  await mkdir(rootfs, { recursive: true });
  try {
    await execa('tar', ['-C', rootfs, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball]);
    // export-image/05-finalise: a systemd first boot (ConditionFirstBoot units such as rpi-resize run). Written
    // here because mmdebstrap's reproducibility clean-up empties /etc/machine-id after every hook.
    await writeFile(join(rootfs, 'etc/machine-id'), 'uninitialized\n');
    // pi-gen's 04-set-partuuid: the disk id is in fstab and cmdline.txt before the filesystems are made.
    const diskId = randomBytes(4).toString('hex');
    await rename(join(rootfs, 'boot/firmware'), bootDir);
    await mkdir(join(rootfs, 'boot/firmware'));
    await cp(join(LOOKALIKE, 'bootfs'), bootDir, { recursive: true });
    await writeFile(
      join(rootfs, 'etc/fstab'),
      ['proc            /proc           proc    defaults          0       0', `PARTUUID=${diskId}-01  /boot/firmware  vfat    defaults          0       2`, `PARTUUID=${diskId}-02  /               ext4    defaults,noatime  0       1`, ''].join('\n'),
    );
    await writeFile(join(bootDir, 'cmdline.txt'), `console=serial0,115200 console=tty1 root=PARTUUID=${diskId}-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n`);
    const contentMiB = await treeMiB(rootfs);
    // export-image/prerun.sh: content + 20 % + 200 MiB, rounded to whole 4 MiB.
    const rootMiB = Math.ceil((contentMiB * 1.2 + 200) / 4) * 4;
    const image = join(dir, 'lookalike.img');
    await assembleImage({
      rootDir: rootfs,
      bootDir,
      output: `${image}.partial`,
      bootMiB: BOOT_MIB,
      rootMiB,
      layout: { firstSectorMiB: 8, bootLabel: 'bootfs', rootLabel: 'rootfs', fatSectorsPerCluster: 1, ext4Features: LOOKALIKE_EXT4_FEATURES, diskId, bootCode: await partedBootCode(rootfs) },
    });
    await rename(`${image}.partial`, image);
    await execa('xz', ['--keep', '--force', '-T2', '-1', image]);
    const record: Lookalike = {
      image,
      xz: `${image}.xz`,
      sha256: await sha256File(image),
      xzSha256: await sha256File(`${image}.xz`),
      xzSize: (await stat(`${image}.xz`)).size,
      size: (await stat(image)).size,
      diskId,
      buildSeconds: (Date.now() - started) / 1000,
    };
    await writeFile(recordPath, JSON.stringify(record, null, 2));
    return record;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The MBR boot code `parted mklabel msdos` writes, from the image's own parted (arm64, through qemu-user).
 * pi-gen's export-image/prerun.sh makes the table with `parted mklabel msdos`, so real images carry this code. It
 * matters: parted keeps an MBR's disk identifier only when boot code is present and otherwise writes a new random
 * one (libparted's msdos_write), so on a card without it the first boot's `parted resizepart` (resize_early)
 * re-keys the disk and root=PARTUUID in cmdline.txt no longer names any partition.
 */
async function partedBootCode(rootfs: string): Promise<Buffer> {
  const scratch = join(rootfs, 'tmp/mbr.img');
  await writeFile(scratch, Buffer.alloc(1024 * 1024));
  try {
    await execa('chroot', [rootfs, '/usr/sbin/parted', '--script', '/tmp/mbr.img', 'mklabel', 'msdos']);
    const code = (await readFile(scratch)).subarray(0, MBR_BOOT_CODE_BYTES);
    if (code.every((byte) => byte === 0)) throw new Error('parted mklabel msdos wrote no MBR boot code; the look-alike would not be laid out as pi-gen lays out Raspberry Pi OS');
    return Buffer.from(code);
  } finally {
    await rm(scratch, { force: true });
  }
}

export const LOOKALIKE_OS_NAME = 'Raspberry Pi OS Lite (64-bit)';
export const LOOKALIKE_SYSTEMD_OS_NAME = 'Raspberry Pi OS Lite (64-bit, 2025-10-01, systemd format)';

/**
 * Serve the look-alike the way downloads.raspberrypi.com serves Raspberry Pi OS: the .img.xz and an Imager
 * repository JSON listing it with `init_format: cloudinit-rpi` (and a second entry, the same image listed with
 * `systemd`, as the 2025-10-01 list had it). Returns the JSON's URL.
 */
export async function serveLookalike(server: TestServer, lookalike: Lookalike): Promise<string> {
  const url = `${server.url}/raspios_lite_arm64/images/lookalike.img.xz`;
  server.serve('/raspios_lite_arm64/images/lookalike.img.xz', { file: lookalike.xz });
  const entry = (name: string, initFormat: string) => ({
    name,
    description: 'A port of Debian Trixie with no desktop environment (simplex-pi test look-alike)',
    icon: 'https://127.0.0.1/icon.png',
    url,
    extract_size: lookalike.size,
    extract_sha256: lookalike.sha256,
    image_download_size: lookalike.xzSize,
    image_download_sha256: lookalike.xzSha256,
    release_date: '2025-12-04',
    init_format: initFormat,
    devices: ['pi5-64bit', 'pi4-64bit', 'pi3-64bit'],
  });
  server.serve('/os_list_imagingutility_v4.json', {
    contentType: 'application/json',
    body: JSON.stringify({
      imager: { latest_version: '2.0.0' },
      os_list: [
        {
          name: 'Raspberry Pi OS (other)',
          description: 'Other Raspberry Pi OS based images',
          icon: 'https://127.0.0.1/icon.png',
          subitems: [entry(LOOKALIKE_OS_NAME, 'cloudinit-rpi'), entry(LOOKALIKE_SYSTEMD_OS_NAME, 'systemd')],
        },
      ],
    }),
  });
  return `${server.url}/os_list_imagingutility_v4.json`;
}
