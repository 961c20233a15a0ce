import { mkdir, open, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { fatTarget } from '../../builder/image/bootfs.ts';
import { REPO } from './env.ts';

/**
 * A small base image made with the real tools, shaped like Raspberry Pi OS Trixie (variant `trixie`: pi-gen's
 * layout, machine-id `uninitialized`, rpi-resize enabled, cloud-init with NoCloud on the boot partition, a
 * zstd initramfs with resize_early) or like a plain Debian cloud image (variant `debian`: empty machine-id,
 * stock cloud.cfg with growpart/resizefs, one-line apt sources, a gzip initrd in /boot). Only files are
 * made: no packages are installed, the dpkg status is written by hand. For `inspect-base`'s tests.
 */

export const MiB = 1024 * 1024;
const BOOT_START = 8 * MiB;
const BOOT_SIZE = 64 * MiB;
const ROOT_SIZE = 48 * MiB;

export interface SyntheticBase {
  image: string;
  diskId: string;
  serial: string;
}

async function put(root: string, path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content, { mode });
}

async function link(root: string, path: string, target: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await symlink(target, join(root, path));
}

const stanza = (name: string, version: string, status = 'install ok installed', arch = 'arm64') =>
  `Package: ${name}\nStatus: ${status}\nPriority: optional\nArchitecture: ${arch}\nVersion: ${version}\nDescription: ${name}\n multi-line description\n`;

/** A newc cpio archive of `files` made by the real cpio, optionally compressed by the real compressor. */
async function cpioArchive(dir: string, files: Record<string, string>, compress?: 'zstd' | 'gzip'): Promise<Buffer> {
  for (const [path, content] of Object.entries(files)) await put(dir, path, content, 0o755);
  const names = Object.keys(files).flatMap((p) => p.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/')));
  const list = [...new Set(names)].join('\n');
  const archive = await execa('cpio', ['--quiet', '-o', '-H', 'newc'], { cwd: dir, input: `${list}\n`, encoding: 'buffer' });
  const raw = Buffer.from(archive.stdout);
  if (!compress) return raw;
  const args = compress === 'zstd' ? ['-q', '-c', '-19'] : ['-c', '-9'];
  return Buffer.from((await execa(compress, args, { input: raw, encoding: 'buffer' })).stdout);
}

export async function makeSyntheticBase(dir: string, variant: 'trixie' | 'debian'): Promise<SyntheticBase> {
  const diskId = variant === 'trixie' ? '0x6c3f1a2b' : '0x0badf00d';
  const serial = variant === 'trixie' ? '1A2B3C4D' : 'DEB0C0DE';
  const hex = diskId.slice(2);
  const root = join(dir, `${variant}-root`);
  const boot = join(dir, `${variant}-boot`);
  await mkdir(join(root, 'boot/firmware'), { recursive: true });
  await mkdir(boot, { recursive: true });
  // Merged /usr, as on Debian since bookworm: the image's own absolute links go through it.
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await link(root, 'lib', 'usr/lib');

  const resizeUnit = await readFile(join(REPO, 'test/fixtures/raspios-lookalike/packages/raspberrypi-sys-mods/usr/lib/systemd/system/rpi-resize.service'), 'utf8');
  const userconfigUnit = await readFile(join(REPO, 'test/fixtures/raspios-lookalike/packages/userconf-pi/usr/lib/systemd/system/userconfig.service'), 'utf8');
  await put(root, 'usr/lib/systemd/system/rpi-resize.service', resizeUnit);
  await put(root, 'usr/lib/systemd/system/userconfig.service', userconfigUnit);
  await put(root, 'usr/lib/systemd/system/getty@.service', '[Unit]\nDescription=Getty on %I\n[Install]\nWantedBy=getty.target\n');
  await put(root, 'usr/lib/systemd/system/ssh.service', '[Unit]\nDescription=OpenBSD Secure Shell server\n[Install]\nWantedBy=multi-user.target\n');
  await put(root, 'usr/lib/systemd/system/NetworkManager.service', '[Unit]\nDescription=Network Manager\n[Install]\nWantedBy=multi-user.target\n');
  await put(root, 'usr/lib/systemd/system/systemd-networkd.service', '[Unit]\nDescription=Network Configuration\n');
  await put(root, 'usr/lib/systemd/system/multi-user.target', '[Unit]\nDescription=Multi-User System\n');
  await put(root, 'usr/bin/cloud-init', '#!/usr/bin/python3\n# stand-in: only its presence is read\n', 0o755);
  for (const unit of ['cloud-init-main.service', 'cloud-init-local.service', 'cloud-init-network.service', 'cloud-config.service', 'cloud-final.service']) {
    await put(root, `usr/lib/systemd/system/${unit}`, `[Unit]\nDescription=${unit}\n[Install]\nWantedBy=cloud-init.target\n`);
    await link(root, `etc/systemd/system/cloud-init.target.wants/${unit}`, `/usr/lib/systemd/system/${unit}`);
  }
  await put(root, 'usr/lib/systemd/system/cloud-init.target', '[Unit]\nDescription=Cloud-init target\n[Install]\nWantedBy=multi-user.target\n');
  await link(root, 'etc/systemd/system/multi-user.target.wants/cloud-init.target', '/lib/systemd/system/cloud-init.target');
  await link(root, 'etc/systemd/system/default.target', '/lib/systemd/system/multi-user.target');
  await put(root, 'usr/share/zoneinfo/Europe/London', 'TZif2 stand-in\n');
  // A link whose target exists on any Debian host but not in this image: it must not resolve into the host.
  await link(root, 'etc/localtime', '/usr/share/zoneinfo/Etc/UTC');
  await put(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' + (variant === 'trixie' ? 'pi:x:1000:1000:,,,:/home/pi:/usr/sbin/nologin\n' : 'debian:x:1000:1000:Debian:/home/debian:/bin/bash\n'));
  await put(root, 'etc/shadow', `root:*:20000:0:99999:7:::\n${variant === 'trixie' ? 'pi:!:20000:0:99999:7:::' : 'debian::20000:0:99999:7:::'}\n`, 0o640);
  await put(root, 'etc/group', variant === 'trixie' ? 'root:x:0:\nsudo:x:27:pi\nvideo:x:44:pi\npi:x:1000:\n' : 'root:x:0:\nsudo:x:27:debian\ndebian:x:1000:\n');

  if (variant === 'trixie') {
    await put(root, 'etc/machine-id', 'uninitialized\n');
    await link(root, 'var/lib/dbus/machine-id', '/etc/machine-id');
    await put(root, 'etc/fstab', `proc            /proc           proc    defaults          0       0\nPARTUUID=${hex}-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=${hex}-02  /               ext4    defaults,noatime  0       1\n`);
    await put(root, 'usr/lib/os-release', 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\nID=debian\n');
    await link(root, 'etc/os-release', '../usr/lib/os-release');
    await put(root, 'etc/rpi-issue', 'Raspberry Pi reference 2025-10-01\nGenerated using pi-gen, https://github.com/RPi-Distro/pi-gen, 0123abcd, stage2\n');
    await link(root, 'etc/systemd/system/sysinit.target.wants/rpi-resize.service', '/lib/systemd/system/rpi-resize.service');
    await link(root, 'etc/systemd/system/multi-user.target.wants/userconfig.service', '/lib/systemd/system/userconfig.service');
    await link(root, 'etc/systemd/system/multi-user.target.wants/NetworkManager.service', '/usr/lib/systemd/system/NetworkManager.service');
    await link(root, 'etc/systemd/system/systemd-networkd.service', '/dev/null');
    await put(root, 'usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys', '#!/bin/sh\n', 0o755);
    await put(root, 'etc/cloud/cloud.cfg', await readFile(join(REPO, 'test/fixtures/raspios-lookalike/rootfs/etc/cloud/cloud.cfg'), 'utf8'));
    await put(root, 'etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg', await readFile(join(REPO, 'test/fixtures/raspios-lookalike/packages/rpi-cloud-init-mods/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg'), 'utf8'));
    await put(root, 'etc/cloud/cloud.cfg.d/README', 'not a .cfg: cloud-init ignores it\n');
    await put(root, 'etc/apt/sources.list', '');
    await put(root, 'etc/apt/sources.list.d/debian.sources', await readFile(join(REPO, 'test/fixtures/raspios-lookalike/rootfs/etc/apt/sources.list.d/debian.sources'), 'utf8'));
    await put(root, 'etc/apt/sources.list.d/raspi.sources', 'Types: deb\nURIs: http://127.0.0.1:9/raspi\nSuites: trixie\nComponents: main\nEnabled: no\n');
    await put(root, 'etc/ssh/sshd_config.d/rename_user.conf', 'Banner /usr/share/userconf-pi/sshd_banner\n');
    await put(root, 'etc/initramfs-tools/update-initramfs.conf', 'update_initramfs=yes\nbackup_initramfs=no\n');
    await put(root, 'etc/initramfs-tools/initramfs.conf', 'MODULES=most\nBUSYBOX=auto\nCOMPRESS=zstd\n');
    await put(root, 'etc/initramfs-tools/conf.d/zz-dep.conf', 'MODULES=dep\n');
    await put(
      root,
      'var/lib/dpkg/status',
      [
        stanza('raspberrypi-sys-mods', '20250926+1'),
        stanza('userconf-pi', '0.11'),
        stanza('cloud-init', '25.2-1+rpt1', 'install ok installed', 'all'),
        stanza('rpi-cloud-init-mods', '0.3', 'install ok installed', 'all'),
        stanza('systemd', '257.8-1~deb13u2'),
        stanza('openssh-server', '1:10.0p1-7+deb13u4'),
        stanza('tor', '0.4.9.15-0+deb13u1', 'deinstall ok config-files'),
        stanza('e2fsprogs', '1.47.2-3+b3'),
        stanza('initramfs-tools', '0.148.3', 'install ok installed', 'all'),
        stanza('network-manager', '1.52.1-1'),
        stanza('tzdata', '2025c-0+deb13u1', 'install ok installed', 'all'),
        stanza('linux-image-rpi-v8', '1:6.12.47-1+rpt1'),
        stanza('linux-image-6.12.47+rpt-rpi-2712', '1:6.12.47-1+rpt1'),
        stanza('bash', '5.2.37-2'),
      ].join('\n'),
    );
    await put(boot, 'cmdline.txt', `console=serial0,115200 console=tty1 root=PARTUUID=${hex}-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n`);
    await put(boot, 'config.txt', '# For more options and information see\n[all]\nauto_initramfs=1\narm_64bit=1\ndtoverlay=vc4-kms-v3d\n');
    await put(boot, 'issue.txt', 'Raspberry Pi reference 2025-10-01\n');
    await put(boot, 'meta-data', 'instance_id: rpios-image\n');
    await put(boot, 'user-data', '#cloud-config\n# This is the user-data configuration file for cloud-init.\n');
    await put(boot, 'network-config', '# network-config\n');
    await put(boot, 'overlays/README', 'device tree overlays\n');
    await writeFile(join(boot, 'kernel8.img'), Buffer.alloc(300_000, 7));
    await writeFile(join(boot, 'kernel_2712.img'), Buffer.alloc(200_000, 9));
    // Early (uncompressed) microcode-style archive + zstd main archive: the layout mkinitramfs makes.
    const early = await cpioArchive(join(dir, 'initrd-early'), { 'kernel/x86/microcode/AuthenticAMD.bin': 'ucode' });
    const main = await cpioArchive(
      join(dir, 'initrd-main'),
      {
        init: '#!/bin/sh\n',
        'scripts/local-premount/resize_early': '#!/bin/sh\n# stand-in\n',
        'scripts/local-bottom/set_partuuid': '#!/bin/sh\n',
        'usr/sbin/parted': 'ELF stand-in',
        'usr/lib/modules/6.12/kernel/fs/resize-helper.ko': 'not a resize script',
      },
      'zstd',
    );
    await writeFile(join(boot, 'initramfs8'), Buffer.concat([early, Buffer.alloc(512), main]));
    await writeFile(join(boot, 'initramfs_2712'), main);
  } else {
    await put(root, 'etc/machine-id', '');
    await put(root, 'etc/fstab', 'LABEL=RASPIROOT  /  ext4  defaults,x-systemd.growfs  0  1\nLABEL=RASPIFIRM  /boot/firmware  vfat  defaults  0  2\n');
    await put(root, 'etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n');
    await put(root, 'etc/timezone', 'Etc/UTC\n');
    await link(root, 'etc/systemd/system/multi-user.target.wants/ssh.service', '/lib/systemd/system/ssh.service');
    await link(root, 'etc/systemd/system/getty.target.wants/getty@tty1.service', '/lib/systemd/system/getty@.service');
    await put(root, 'etc/cloud/cloud.cfg', 'datasource_list: [ NoCloud, ConfigDrive, None ]\ncloud_init_modules:\n - seed_random\n - growpart\n - resizefs\n - [ set_hostname, always ]\ncloud_config_modules:\n - { name: ntp }\n - runcmd\ncloud_final_modules:\n - scripts-user\nsystem_info:\n  default_user:\n    name: debian\n');
    await put(root, 'etc/cloud/cloud-init.disabled', '');
    await put(root, 'etc/apt/sources.list', 'deb http://deb.debian.org/debian bookworm main\n# deb-src http://deb.debian.org/debian bookworm main\ndeb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main\n');
    await put(root, 'etc/ssh/ssh_host_ed25519_key', 'stand-in, not a key\n', 0o600);
    await put(root, 'usr/share/zoneinfo/Asia/Calcutta', 'TZif2 stand-in\n');
    await put(root, 'var/lib/dpkg/status', [stanza('systemd', '252.38-1~deb12u1'), stanza('cloud-init', '22.4.2-1+deb12u3', 'install ok installed', 'all'), stanza('e2fsprogs', '1.47.0-2'), stanza('linux-image-6.1.0-40-arm64', '6.1.153-1')].join('\n'));
    const initrd = await cpioArchive(join(dir, 'initrd-debian'), { init: '#!/bin/sh\n', 'scripts/local-bottom/growroot': '#!/bin/sh\n', 'usr/sbin/resize2fs': 'ELF stand-in' }, 'gzip');
    await mkdir(join(root, 'boot'), { recursive: true });
    await writeFile(join(root, 'boot/initrd.img-6.1.0-40-arm64'), initrd);
    await link(root, 'boot/initrd.img', 'initrd.img-6.1.0-40-arm64');
    await put(boot, 'cmdline.txt', 'console=tty0 console=ttyS1,115200 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=1 cma=64M rootwait\n');
    await put(boot, 'config.txt', 'arm_64bit=1\nkernel=vmlinuz-6.1.0-40-arm64\ninitramfs initrd.img-6.1.0-40-arm64\n');
    await writeFile(join(boot, 'vmlinuz-6.1.0-40-arm64'), Buffer.alloc(100_000, 3));
  }

  const image = join(dir, `${variant}.img`);
  const bootSectors = BOOT_SIZE / 512;
  const rootStart = (BOOT_START + BOOT_SIZE) / 512;
  const file = await open(image, 'w');
  await file.truncate(BOOT_START + BOOT_SIZE + ROOT_SIZE);
  await file.close();
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', image], {
    input: `label: dos\nlabel-id: ${diskId}\nunit: sectors\nstart=${BOOT_START / 512}, size=${bootSectors}, type=c\nstart=${rootStart}, type=83\n`,
  });
  await execa('mkfs.fat', ['-F', '32', '-s', '1', '-n', variant === 'trixie' ? 'bootfs' : 'RASPIFIRM', '-i', serial, '--offset', String(BOOT_START / 512), image, String(BOOT_SIZE / 1024)]);
  await execa('mcopy', ['-s', '-p', '-m', '-i', fatTarget(image, { start: BOOT_START / 512 }), ...(await readdirNames(boot)), '::/'], { env: { MTOOLS_SKIP_CHECK: '1' } });
  const features = variant === 'trixie' ? ['-O', '^huge_file,^64bit,metadata_csum_seed,orphan_file'] : [];
  await execa('mke2fs', ['-q', '-t', 'ext4', '-L', variant === 'trixie' ? 'rootfs' : 'RASPIROOT', ...features, '-d', root, '-E', `offset=${rootStart * 512}`, image, `${ROOT_SIZE / 1024}k`]);
  return { image, diskId, serial };
}

async function readdirNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).map((n) => join(dir, n));
}
