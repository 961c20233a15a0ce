import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sha256File } from '../../builder/hash.ts';
import { listLoops } from '../../builder/image/loop.ts';
import { mountPoints } from '../../builder/image/mounts.ts';
import { inspectBase } from '../../builder/inspect/inspect-base.ts';
import { baseReportSchema, type BaseReport } from '../../builder/inspect/schema.ts';
import { cli, isRoot, scratch } from '../helpers/env.ts';
import { type SyntheticBase, makeSyntheticBase } from '../helpers/synthetic-base.ts';

const unit = (r: BaseReport, name: string) => r.units.find((u) => u.unit === name)!;
const finding = (r: BaseReport, topic: string) => r.findings.filter((f) => f.topic === topic);

/** Nothing of an inspection may remain: no loop device on the image, no mount, no temporary file. */
async function leftovers(image: string, tmpDir: string): Promise<string[]> {
  const loops = (await listLoops()).filter((l) => l.backingFile === image || l.backingFile.startsWith(`${tmpDir}/`)).map((l) => `${l.device} ${l.backingFile}`);
  const mounts = (await mountPoints()).filter((m) => m.startsWith(`${tmpDir}/`));
  return [...loops, ...mounts, ...(await readdir(tmpDir))];
}

describe.runIf(isRoot)('simplex-pi inspect-base on small synthetic base images made with the real tools', () => {
  let dir: string;
  let tmpDir: string;
  let trixie: SyntheticBase;
  let debian: SyntheticBase;
  let trixieXz: string;
  let sums: Map<string, string>;
  let report: BaseReport;

  beforeAll(async () => {
    dir = await scratch('inspect-base');
    tmpDir = await scratch('inspect-tmp');
    trixie = await makeSyntheticBase(dir, 'trixie');
    debian = await makeSyntheticBase(dir, 'debian');
    await execa('xz', ['--keep', '-0', '--threads=0', trixie.image]);
    trixieXz = `${trixie.image}.xz`;
    sums = new Map();
    for (const file of [trixie.image, trixieXz, debian.image]) sums.set(file, await sha256File(file));
    report = await inspectBase(trixie.image, { tmpDir });
  }, 120_000);

  afterEach(async () => {
    // Every test must leave the inputs byte for byte as they were, and release everything it held.
    for (const [file, sum] of sums) expect(await sha256File(file), file).toBe(sum);
    expect(await leftovers(trixie.image, tmpDir)).toEqual([]);
  });

  it('reads the partition table and the FAT boot partition', () => {
    expect(report.image).toMatchObject({ path: trixie.image, compression: 'none', sha256: sums.get(trixie.image), downloadSha256: null });
    expect(report.partitionTable).toMatchObject({ label: 'dos', diskId: trixie.diskId, sectorSize: 512, layoutProblem: null });
    expect(report.partitionTable.partitions).toEqual([
      { number: 1, start: 16384, size: 131072, type: 'c', bootable: false, partuuid: '6c3f1a2b-01' },
      { number: 2, start: 147456, size: 98304, type: '83', bootable: false, partuuid: '6c3f1a2b-02' },
    ]);
    const boot = report.bootfs;
    expect(boot).toMatchObject({ partition: 1, fatBits: 32, label: 'bootfs', serial: trixie.serial, sectorsPerCluster: 1, clusterBytes: 512 });
    expect(boot.files.map((f) => (f.dir ? `${f.name}/` : f.name)).sort()).toEqual(
      ['cmdline.txt', 'config.txt', 'initramfs8', 'initramfs_2712', 'issue.txt', 'kernel8.img', 'kernel_2712.img', 'meta-data', 'network-config', 'overlays/', 'user-data'],
    );
    expect(boot.files.find((f) => f.name === 'kernel8.img')?.size).toBe(300_000);
    expect([...boot.kernels].sort()).toEqual(['kernel8.img', 'kernel_2712.img'].sort());
    expect([...boot.initramfs].sort()).toEqual(['initramfs8', 'initramfs_2712'].sort());
    expect(boot.configTxt).toEqual(['[all]', 'auto_initramfs=1', 'arm_64bit=1']);
    expect(boot.nocloudSeed).toEqual({ metaData: true, userData: true, networkConfig: true });
    expect(boot.cmdline).toMatchObject({
      resize: true,
      root: { form: 'PARTUUID', value: '6c3f1a2b-02', matchesPartition: 2 },
      ds: null,
      init: null,
      cloudInitDisabled: false,
    });
    expect(boot.cmdline?.text).toBe('console=serial0,115200 console=tty1 root=PARTUUID=6c3f1a2b-02 rootfstype=ext4 fsck.repair=yes rootwait resize');
  });

  it('reads the ext4 root: features, label, what this host knows, fstab, machine-id', () => {
    expect(report.rootfs).toMatchObject({ partition: 2, label: 'rootfs', state: 'clean', blockCount: 49152, unknownToHost: [] });
    expect(report.rootfs.features).toEqual(expect.arrayContaining(['orphan_file', 'metadata_csum_seed', 'metadata_csum', 'has_journal']));
    expect(report.rootfs.features).not.toContain('huge_file');
    expect(report.rootfs.needsNewerE2fsprogs).toContainEqual({ feature: 'orphan_file', since: '1.47.0' });
    expect(report.rootfs.hostE2fsprogs).toMatch(/^1\.\d+/);
    expect(report.fstab.entries.map((e) => [e.spec, e.file, e.vfstype, e.options])).toEqual([
      ['proc', '/proc', 'proc', 'defaults'],
      ['PARTUUID=6c3f1a2b-01', '/boot/firmware', 'vfat', 'defaults'],
      ['PARTUUID=6c3f1a2b-02', '/', 'ext4', 'defaults,noatime'],
    ]);
    expect(report.fstab).toMatchObject({ bootMount: '/boot/firmware', foreignPartuuids: [] });
    expect(report.machineId).toMatchObject({ state: 'uninitialized', firstBoot: true, dbusMachineId: 'symlink' });
    expect(report.osRelease).toMatchObject({ VERSION_CODENAME: 'trixie', ID: 'debian' });
    expect(report.rpiIssue).toMatch(/^Raspberry Pi reference 2025-10-01/);
  });

  it('reads enabled, disabled, masked and absent units from the wants links, resolving links inside the image', () => {
    expect(unit(report, 'rpi-resize.service')).toMatchObject({
      path: '/usr/lib/systemd/system/rpi-resize.service',
      enabledBy: ['sysinit.target'],
      masked: false,
      conditions: ['ConditionFirstBoot=yes'],
    });
    expect(unit(report, 'rpi-resize.service').text).toContain('Wants=first-boot-complete.target systemd-growfs-root.service fstrim.service');
    expect(unit(report, 'userconfig.service').enabledBy).toEqual(['multi-user.target']);
    expect(unit(report, 'getty@tty1.service')).toMatchObject({ path: '/usr/lib/systemd/system/getty@.service', enabledBy: [] });
    expect(unit(report, 'systemd-networkd.service')).toMatchObject({ masked: true });
    expect(unit(report, 'NetworkManager.service').enabledBy).toEqual(['multi-user.target']);
    expect(unit(report, 'cloud-init-main.service').enabledBy).toEqual(['cloud-init.target']);
    expect(unit(report, 'regenerate_ssh_host_keys.service')).toMatchObject({ path: null, enabledBy: [] });
    expect(report.enabledLinks).toContain('sysinit.target.wants/rpi-resize.service');
    expect(report.defaultTarget).toBe('multi-user.target');
    // /etc/localtime points at a file every Debian host has but this image lacks: resolved in the image, it dangles.
    expect(report.timezone).toMatchObject({ localtime: '/usr/share/zoneinfo/Etc/UTC', localtimeResolves: false, legacyAliases: false });
  });

  it('reads cloud-init, the init_format it implies, the initramfs resize scripts and initramfs-tools settings', () => {
    expect(report.cloudInit).toMatchObject({
      installed: true,
      version: '25.2-1+rpt1',
      disabled: false,
      cloudCfg: true,
      growpart: false,
      resizefs: false,
      datasourceList: ['NoCloud', 'None'],
      nocloudSeedfrom: 'file:///boot/firmware/',
      defaultUser: 'pi',
      parseErrors: [],
    });
    expect(report.cloudInit.cfgD).toEqual([{ name: '99_raspberry-pi.cfg', keys: ['datasource_list', 'datasource'] }]);
    expect(report.cloudInit.modules.init).toContain('users_groups');
    expect(report.initFormat.value).toBe('cloudinit-rpi');
    const initramfs8 = report.initramfs.find((i) => i.source === 'bootfs:initramfs8')!;
    expect(initramfs8).toMatchObject({ segments: ['none', 'zstd'], error: null });
    expect([...initramfs8.resizeFiles].sort()).toEqual(['scripts/local-bottom/set_partuuid', 'scripts/local-premount/resize_early', 'usr/sbin/parted']);
    expect(report.initramfs.find((i) => i.source === 'bootfs:initramfs_2712')).toMatchObject({ segments: ['zstd'], error: null });
    expect(report.initramfsTools).toEqual({ updateInitramfs: 'yes', modules: 'dep', compress: 'zstd' });
  });

  it('reads packages, apt sources and the first user', () => {
    const versions = Object.fromEntries(report.packages.map((p) => [p.name, p.version]));
    expect(versions).toMatchObject({
      'raspberrypi-sys-mods': '20250926+1',
      'userconf-pi': '0.11',
      'cloud-init': '25.2-1+rpt1',
      'rpi-cloud-init-mods': '0.3',
      systemd: '257.8-1~deb13u2',
      'openssh-server': '1:10.0p1-7+deb13u4',
      e2fsprogs: '1.47.2-3+b3',
      'initramfs-tools': '0.148.3',
      'network-manager': '1.52.1-1',
      tzdata: '2025c-0+deb13u1',
      'linux-image-rpi-v8': '1:6.12.47-1+rpt1',
      'linux-image-6.12.47+rpt-rpi-2712': '1:6.12.47-1+rpt1',
    });
    // Removed with its configuration left: not installed. Unrelated packages are not listed.
    expect(versions).not.toHaveProperty('tor');
    expect(versions).not.toHaveProperty('bash');
    expect(report.packagesMissing).toEqual(['tor', 'tzdata-legacy']);
    expect(report.apt.format).toBe('deb822');
    expect(report.apt.sourcesListLines).toBe(0);
    expect(report.apt.sources.map((s) => [s.file, s.suites.join(' '), s.enabled])).toEqual([
      ['/etc/apt/sources.list.d/debian.sources', 'trixie trixie-updates', true],
      ['/etc/apt/sources.list.d/debian.sources', 'trixie-security', true],
      ['/etc/apt/sources.list.d/raspi.sources', 'trixie', false],
    ]);
    expect(report.defaultUser).toEqual({
      name: 'pi',
      uid: 1000,
      gid: 1000,
      home: '/home/pi',
      shell: '/usr/sbin/nologin',
      passwd: 'pi:x:1000:1000:,,,:/home/pi:/usr/sbin/nologin',
      password: 'locked',
      groups: ['sudo', 'video', 'pi'],
    });
    expect(report.ssh).toEqual({ hostKeys: [], sshdConfigD: ['rename_user.conf'] });
  });

  it('says what the facts mean: first boot grows the filesystem, Trixie ext4 features, cloudinit-rpi', () => {
    expect(finding(report, 'machine-id')).toEqual([expect.objectContaining({ level: 'ok', text: expect.stringContaining('rpi-resize.service will run') })]);
    expect(finding(report, 'resize')[0]).toMatchObject({ level: 'ok' });
    expect(finding(report, 'ext4')[0]).toMatchObject({ level: 'note', text: expect.stringContaining('orphan_file needs e2fsprogs ≥ 1.47.0') });
    expect(finding(report, 'init_format')[0]?.text).toContain('"cloudinit-rpi"');
    expect(report.findings.filter((f) => f.level === 'warn').map((f) => f.topic)).toEqual(['timezone']);
  });

  it('reads an .img.xz the same way, from a temporary copy it removes', async () => {
    const fromXz = await inspectBase(trixieXz, { tmpDir });
    expect(fromXz.image).toEqual({ path: trixieXz, compression: 'xz', sha256: sums.get(trixie.image), downloadSha256: sums.get(trixieXz), size: report.image.size });
    const { image: _a, ...rest } = fromXz;
    const { image: _b, ...expected } = report;
    expect(rest).toEqual(expected);
  });

  it('reports a Debian-shaped base differently: empty machine-id, stock cloud-init, LABEL=, one-line sources, gzip initrd in /boot', async () => {
    const r = await inspectBase(debian.image, { tmpDir });
    expect(r.machineId).toMatchObject({ state: 'empty', firstBoot: false, symlinkTarget: null, dbusMachineId: 'missing' });
    expect(finding(r, 'machine-id')[0]).toMatchObject({ level: 'warn' });
    expect(r.bootfs).toMatchObject({ label: 'RASPIFIRM', serial: debian.serial, kernels: ['vmlinuz-6.1.0-40-arm64'], initramfs: [] });
    expect(r.bootfs.cmdline).toMatchObject({ resize: false, root: { form: 'LABEL', value: 'RASPIROOT', matchesPartition: null } });
    expect(r.rootfs.features).toContain('huge_file');
    expect(r.rootfs.needsNewerE2fsprogs.map((f) => f.feature)).not.toContain('orphan_file');
    expect(r.cloudInit).toMatchObject({ installed: true, disabled: true, growpart: true, resizefs: true, datasourceList: ['NoCloud', 'ConfigDrive', 'None'], defaultUser: 'debian' });
    expect(r.cloudInit.modules).toEqual({ init: ['seed_random', 'growpart', 'resizefs', 'set_hostname'], config: ['ntp', 'runcmd'], final: ['scripts-user'] });
    expect(r.initFormat).toMatchObject({ value: 'none', reason: expect.stringContaining('disabled') });
    expect(r.initramfs).toEqual([
      { source: 'rootfs:/boot/initrd.img-6.1.0-40-arm64', size: expect.any(Number), segments: ['gzip'], entries: expect.any(Number), resizeFiles: ['scripts/local-bottom/growroot', 'usr/sbin/resize2fs'], error: null },
    ]);
    expect(r.apt.format).toBe('list');
    expect(r.apt.sources.map((s) => s.suites[0])).toEqual(['bookworm', 'bookworm-security']);
    expect(r.defaultUser).toMatchObject({ name: 'debian', shell: '/bin/bash', password: 'none', groups: ['sudo', 'debian'] });
    expect(r.ssh.hostKeys).toEqual(['ssh_host_ed25519_key']);
    expect(unit(r, 'getty@tty1.service').enabledBy).toEqual(['getty.target']);
    expect(unit(r, 'ssh.service').enabledBy).toEqual(['multi-user.target']);
    expect(r.timezone).toMatchObject({ etcTimezone: 'Etc/UTC', legacyAliases: true });
    expect(r.packagesMissing).toContain('raspberrypi-sys-mods');
    expect(finding(r, 'growth')[0]?.text).toContain('x-systemd.growfs');
  });

  it('needs no journal replay: a root filesystem marked needs_recovery is read from the read-only loop device as it is', async () => {
    const copy = join(dir, 'needs-recovery.img');
    await copyFile(trixie.image, copy);
    // Set the flag on the copy (a writable loop device of our own, released before inspecting).
    const offset = report.partitionTable.partitions[1]!.start * 512;
    await execa('debugfs', ['-w', '-R', 'feature needs_recovery', `${copy}?offset=${offset}`]);
    const before = await sha256File(copy);
    const r = await inspectBase(copy, { tmpDir });
    expect(r.rootfs.features).toContain('needs_recovery');
    expect(finding(r, 'ext4').map((f) => f.level)).toContain('warn');
    expect(r.machineId.state).toBe('uninitialized');
    expect(await sha256File(copy)).toBe(before);
    expect(await leftovers(copy, tmpDir)).toEqual([]);
  });

  it('names root filesystem features this host\'s e2fsprogs does not know (e2fsck would refuse them)', async () => {
    const copy = join(dir, 'unknown-feature.img');
    await copyFile(trixie.image, copy);
    const offset = report.partitionTable.partitions[1]!.start * 512;
    // A compat feature bit no e2fsprogs release assigns: the kernel mounts it, e2fsck says "Get a newer version".
    await execa('debugfs', ['-w', '-R', 'feature FEATURE_C13', `${copy}?offset=${offset}`]);
    const e2fsck = await execa('e2fsck', ['-fn', `${copy}?offset=${offset}`], { reject: false, all: true });
    expect(e2fsck.all).toMatch(/unsupported feature\(s\): FEATURE_C13/);
    const r = await inspectBase(copy, { tmpDir });
    expect(r.rootfs.unknownToHost).toEqual(['FEATURE_C13']);
    expect(finding(r, 'ext4')[0]).toMatchObject({ level: 'warn', text: expect.stringContaining('FEATURE_C13') });
    expect(await leftovers(copy, tmpDir)).toEqual([]);
  });

  it('the CLI prints the human report, and --json a report that matches the schema', async () => {
    const human = await cli(['inspect-base', trixie.image, '--tmp', tmpDir], { timeout: 120_000 });
    expect(human.exitCode, human.all).toBe(0);
    expect(human.stdout).toContain('Partition table: dos, disk id 0x6c3f1a2b');
    expect(human.stdout).toContain('Boot partition (1): FAT32, label "bootfs", volume id 1A2B-3C4D, cluster 512 bytes (1 sector)');
    expect(human.stdout).toMatch(/\/etc\/machine-id: uninitialized/);
    expect(human.stdout).toMatch(/rpi-resize\.service\s+enabled \(sysinit\.target\)\s+\[ConditionFirstBoot=yes\]/);
    expect(human.stdout).toContain('Raspberry Pi Imager init_format a build would publish: cloudinit-rpi');
    expect(human.stdout).toMatch(/^ok {4}machine-id/m);
    const json = await cli(['inspect-base', trixieXz, '--json', '--tmp', tmpDir], { timeout: 120_000 });
    expect(json.exitCode, json.all).toBe(0);
    const parsed = baseReportSchema.parse(JSON.parse(json.stdout));
    expect(parsed.image.sha256).toBe(sums.get(trixie.image));
    expect(parsed.initFormat.value).toBe('cloudinit-rpi');
    expect(json.stderr).toBe('');
  });

  it('refuses to run without root, saying why, before touching anything', async () => {
    const spy = vi.spyOn(process as { getuid: () => number }, 'getuid').mockReturnValue(1000);
    try {
      await expect(inspectBase(trixie.image, { tmpDir })).rejects.toThrow(/inspect-base needs root: .*read-only loop device.*sudo simplex-pi inspect-base/);
    } finally {
      spy.mockRestore();
    }
  });
});
