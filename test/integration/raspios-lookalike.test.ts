import { describe, expect, it } from 'vitest';
import { sha256File } from '../../builder/hash.ts';
import { readMbrBootCode } from '../../builder/image/assemble.ts';
import { inspectBase } from '../../builder/inspect/inspect-base.ts';
import { cli, isRoot } from '../helpers/env.ts';
import { LOOKALIKE_EXT4_FEATURES, raspiosLookalike } from '../helpers/raspios-lookalike.ts';

/**
 * The Raspberry Pi OS Trixie look-alike is only worth its tests if it is shaped like the real thing: read back
 * with `simplex-pi inspect-base` (what a user with a real image runs and reports), it must show pi-gen's layout
 * and the first-boot state the pipeline has to keep (test/fixtures/raspios-lookalike/README.md). This is
 * also where the look-alike is built the first time on a machine (cached afterwards), so the boot test does
 * not pay for it.
 */
describe.runIf(isRoot)('the Raspberry Pi OS look-alike, read back by inspect-base', () => {
  it('has pi-gen\'s layout and Trixie\'s first-boot state, and inspect-base leaves it unchanged', { timeout: 90 * 60 * 1000 }, async () => {
    const lookalike = await raspiosLookalike();
    const report = await inspectBase(lookalike.xz);
    expect(await sha256File(lookalike.xz)).toBe(lookalike.xzSha256);
    expect(report.image).toMatchObject({ compression: 'xz', sha256: lookalike.sha256, downloadSha256: lookalike.xzSha256 });

    // MBR with the random disk id; FAT32 "bootfs" p1 at 8 MiB, 512 MiB, one sector per cluster; ext4 "rootfs" p2.
    expect(report.partitionTable).toMatchObject({ label: 'dos', diskId: `0x${lookalike.diskId}`, layoutProblem: null });
    // parted's MBR boot code, as `parted mklabel msdos` in pi-gen leaves it: without it the first boot's parted
    // (resize_early) gives the card a new disk id behind cmdline.txt's back and the card cannot find its root.
    expect((await readMbrBootCode(lookalike.image)).some((byte) => byte !== 0)).toBe(true);
    const [p1, p2] = report.partitionTable.partitions;
    expect(p1).toMatchObject({ number: 1, start: 16384, size: 1048576, type: 'c' });
    expect(p2).toMatchObject({ number: 2, start: 16384 + 1048576, type: '83' });
    expect(report.bootfs).toMatchObject({ fatBits: 32, label: 'bootfs', sectorsPerCluster: 1, kernels: ['kernel8.img'], initramfs: ['initramfs8'] });
    expect(report.bootfs.nocloudSeed).toEqual({ metaData: true, userData: true, networkConfig: true });
    expect(report.rootfs.label).toBe('rootfs');
    for (const feature of LOOKALIKE_EXT4_FEATURES) {
      if (feature.startsWith('^')) expect(report.rootfs.features).not.toContain(feature.slice(1));
      else expect(report.rootfs.features).toContain(feature);
    }

    // cmdline.txt and fstab name the partitions by PARTUUID; ` resize` arms the initramfs growth.
    expect(report.bootfs.cmdline).toMatchObject({ resize: true, root: { form: 'PARTUUID', value: `${lookalike.diskId}-02`, matchesPartition: 2 } });
    expect(report.fstab.bootMount).toBe('/boot/firmware');
    expect(report.fstab.foreignPartuuids).toEqual([]);
    expect(report.initramfs[0]?.resizeFiles).toEqual(expect.arrayContaining(['scripts/local-premount/resize_early', 'scripts/local-bottom/set_partuuid']));

    // A systemd first boot: machine-id "uninitialized", rpi-resize enabled in sysinit.target.
    expect(report.machineId).toMatchObject({ state: 'uninitialized', dbusMachineId: 'missing', firstBoot: true });
    const unit = (name: string) => report.units.find((u) => u.unit === name);
    expect(unit('rpi-resize.service')?.enabledBy).toContain('sysinit.target');
    expect(unit('rpi-resize.service')?.conditions).toContain('ConditionFirstBoot=yes');
    expect(unit('userconfig.service')?.enabledBy).toContain('multi-user.target');
    expect(unit('getty@tty1.service')?.enabledBy ?? []).toEqual([]);
    expect(unit('ssh.service')?.enabledBy ?? []).toEqual([]);

    // cloud-init as Raspberry Pi OS configures it: NoCloud on the boot partition, no growpart/resizefs.
    expect(report.cloudInit).toMatchObject({ installed: true, growpart: false, resizefs: false, datasourceList: ['NoCloud', 'None'], nocloudSeedfrom: 'file:///boot/firmware/' });
    expect(report.initFormat.value).toBe('cloudinit-rpi');
    expect(report.apt.format).toBe('deb822');
    expect(report.defaultUser).toMatchObject({ name: 'pi', uid: 1000, shell: '/usr/sbin/nologin', password: 'locked' });
    expect(report.ssh.hostKeys).toEqual([]);
    expect(report.initramfsTools).toMatchObject({ updateInitramfs: 'yes', modules: 'dep' });
    expect(report.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['raspberrypi-sys-mods', 'userconf-pi', 'rpi-cloud-init-mods', 'cloud-init', 'network-manager', 'openssh-server']));
    // What Raspberry Pi OS Lite does not ship either: the pipeline installs tor; Trixie has no legacy zone names.
    expect(report.packagesMissing).toEqual(['tor', 'tzdata-legacy']);
  });

  it('simplex-pi inspect-base prints the same facts for a person to read', { timeout: 10 * 60 * 1000 }, async () => {
    const lookalike = await raspiosLookalike();
    const result = await cli(['inspect-base', lookalike.image]);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toMatch(/\/etc\/machine-id: uninitialized/);
    expect(result.stdout).toMatch(/init_format a build would publish: cloudinit-rpi/);
    expect(result.stdout).toContain(`disk id 0x${lookalike.diskId}`);
  });
});
