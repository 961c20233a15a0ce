import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { APT_SOURCES_DIR, APT_SOURCES_LIST } from '../plan/layout.ts';
import { detectCompression, decompressVerified } from '../base/decompress.ts';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { sha256File } from '../hash.ts';
import { fatTarget, parseMinfo } from '../image/bootfs.ts';
import { attachPartition } from '../image/loop.ts';
import { CLOUD_INIT_DISABLED, detectInitFormat } from '../base/init-format.ts';
import { featureSince, hostExt4 } from '../image/ext4.ts';
import { DBUS_MACHINE_ID, firstBootOf, readBaseMachineId } from '../image/machine-id.ts';
import { mount, unmount } from '../image/mounts.ts';
import { type Partition, parsePartitionTable, raspberryPiLayout } from '../image/partitions.ts';
import type { BuildLog } from '../log.ts';
import { toolVersion } from '../pipeline/tool-version.ts';
import { Resources } from '../resources.ts';
import { findingsOf } from './findings.ts';
import { listInitramfs, resizeFiles } from './initramfs.ts';
import {
  aptFormat,
  bootKernels,
  configTxtLines,
  groupsOf,
  mbrPartuuid,
  parseCloudConfig,
  parseCmdline,
  parseDeb822Sources,
  parseDpkgStatus,
  parseDumpe2fs,
  parseFstab,
  parseMdir,
  parseMinfoCluster,
  parseOsRelease,
  parsePasswd,
  parseSourcesList,
  shadowPasswordState,
  shellAssignment,
} from './parse.ts';
import { type BaseReport, type InitramfsImage, type UnitState, baseReportSchema } from './schema.ts';

/**
 * `simplex-pi inspect-base IMAGE`: what the pipeline relies on in a base image, read without writing to it. The
 * FAT partition is read with mtools (the image file is only read); the ext4 root is mounted from a read-only
 * loop device with `ro,noload` (the journal is not replayed); an .img.xz is decompressed into a temporary
 * directory that is removed afterwards.
 */

/** Packages whose presence and version the pipeline depends on (plus every linux-image-*). */
export const RELEVANT_PACKAGES = [
  'raspberrypi-sys-mods',
  'userconf-pi',
  'cloud-init',
  'rpi-cloud-init-mods',
  'systemd',
  'openssh-server',
  'tor',
  'e2fsprogs',
  'initramfs-tools',
  'network-manager',
  'tzdata',
  'tzdata-legacy',
] as const;

/** Units the pipeline or a first boot depends on: the resize, key, user and cloud-init steps, networking, consoles. */
export const RELEVANT_UNITS = [
  'rpi-resize.service',
  'resize2fs_once.service',
  'regenerate_ssh_host_keys.service',
  'sshswitch.service',
  'userconfig.service',
  'cloud-init-main.service',
  'cloud-init-local.service',
  'cloud-init-network.service',
  'cloud-init.service',
  'cloud-config.service',
  'cloud-final.service',
  'cloud-init.target',
  'ssh.service',
  'NetworkManager.service',
  'NetworkManager-wait-online.service',
  'systemd-networkd.service',
  'getty@tty1.service',
  'avahi-daemon.service',
] as const;

/** Units whose whole text goes into the report (`systemctl cat` in the facts' terms). */
const UNIT_TEXT = new Set(['rpi-resize.service', 'regenerate_ssh_host_keys.service', 'userconfig.service', 'resize2fs_once.service']);

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' };

export interface InspectOptions {
  /** Where an .img.xz is decompressed and the initramfs copied (default: the system's temporary directory). */
  tmpDir?: string;
  /** Held loop devices, mounts and the temporary directory are registered here (for Ctrl-C); released at the end either way. */
  resources?: Resources;
  log?: BuildLog;
  /** Progress messages for a person waiting (decompressing a 3 GB image takes a while). */
  status?: (message: string) => void;
}

const sfdiskRich = z.object({
  partitiontable: z.object({
    label: z.enum(['dos', 'gpt']),
    id: z.string().optional(),
    partitions: z
      .array(z.object({ node: z.string(), start: z.number().int(), size: z.number().int(), type: z.string(), bootable: z.boolean().optional(), name: z.string().optional(), uuid: z.string().optional() }))
      .default([]),
  }),
});

/** Paths inside the mounted image, with symbolic links resolved as the image itself would (never into the host). */
class ImageRoot {
  constructor(readonly root: string) {}

  async resolve(path: string, links = 0): Promise<string> {
    const parts = path.split('/').filter((p) => p && p !== '.');
    const current: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === '..') {
        current.pop();
        continue;
      }
      const host = join(this.root, ...current, part);
      const info = await lstat(host).catch(() => undefined);
      if (!info) return join(this.root, ...current, ...parts.slice(i));
      if (info.isSymbolicLink()) {
        if (links >= 40) throw new UserError(`too many symbolic links resolving ${path} in the image`);
        const target = await readlink(host);
        const rest = parts.slice(i + 1);
        const base = target.startsWith('/') ? '' : `/${current.join('/')}`;
        return this.resolve(`${base}/${target}/${rest.join('/')}`, links + 1);
      }
      current.push(part);
    }
    return join(this.root, ...current);
  }

  async text(path: string): Promise<string | null> {
    const host = await this.resolve(path);
    const info = await stat(host).catch(() => undefined);
    if (!info?.isFile()) return null;
    return readFile(host, 'utf8');
  }

  async exists(path: string): Promise<boolean> {
    return (await stat(await this.resolve(path)).catch(() => undefined)) !== undefined;
  }

  async list(dir: string): Promise<string[]> {
    return (await readdir(await this.resolve(dir)).catch(() => [] as string[])).sort();
  }

  /** The raw target of a symbolic link at `path` (its directory resolved), or null if it is not one. */
  async link(path: string): Promise<string | null> {
    const slash = path.lastIndexOf('/');
    const host = join(await this.resolve(path.slice(0, slash) || '/'), path.slice(slash + 1));
    const info = await lstat(host).catch(() => undefined);
    return info?.isSymbolicLink() ? readlink(host) : null;
  }

  async lexists(path: string): Promise<boolean> {
    const slash = path.lastIndexOf('/');
    const host = join(await this.resolve(path.slice(0, slash) || '/'), path.slice(slash + 1));
    return (await lstat(host).catch(() => undefined)) !== undefined;
  }
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new UserError(
      'inspect-base needs root: it attaches the image\'s root partition to a read-only loop device and mounts it read-only (nothing is written). Run it with sudo: `sudo simplex-pi inspect-base IMAGE`',
    );
  }
}

/** Inspect a base image (.img or .img.xz) and return the typed report; the image is never modified. */
export async function inspectBase(imagePath: string, options: InspectOptions = {}): Promise<BaseReport> {
  requireRoot();
  const { log } = options;
  const status = options.status ?? (() => undefined);
  const info = await stat(imagePath).catch(() => undefined);
  if (!info?.isFile()) throw new UserError(`${imagePath} is not a file (give a Raspberry Pi OS .img or .img.xz)`);
  const resources = options.resources ?? new Resources(log);
  const start = resources.count;
  try {
    const work = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'spi-inspect-'));
    resources.hold(`temporary directory ${work}`, () => rm(work, { recursive: true, force: true }));
    const compression = await detectCompression(imagePath);
    let image = imagePath;
    let sha256: string;
    let downloadSha256: string | null = null;
    if (compression === 'xz') {
      status(`hashing ${imagePath}`);
      downloadSha256 = await sha256File(imagePath);
      image = join(work, 'image.img');
      status(`decompressing into ${work}`);
      sha256 = await decompressVerified(imagePath, image, { what: 'the image to inspect', log });
    } else {
      status(`hashing ${imagePath}`);
      sha256 = await sha256File(imagePath);
    }
    const size = (await stat(image)).size;
    status('reading the partition table');
    return await gather({ imagePath, image, compression, sha256, downloadSha256, size, work, resources, log });
  } finally {
    await resources.releaseAll(start);
  }
}

interface GatherInput {
  imagePath: string;
  image: string;
  compression: 'xz' | 'none';
  sha256: string;
  downloadSha256: string | null;
  size: number;
  work: string;
  resources: Resources;
  log?: BuildLog;
}

async function gather(input: GatherInput): Promise<BaseReport> {
  const { image, work, resources, log } = input;

  // Partition table.
  const sfdisk = await run('sfdisk', ['--json', image], { log, what: `read the partition table of ${input.imagePath}` });
  const table = parsePartitionTable(sfdisk.stdout, input.imagePath);
  const rich = sfdiskRich.parse(JSON.parse(sfdisk.stdout)).partitiontable;
  const diskId = rich.id ?? '';
  const partitions = table.partitions.map((p, i) => {
    const extra = rich.partitions[i]!;
    return {
      number: p.number,
      start: p.start,
      size: p.size,
      type: p.type,
      bootable: extra.bootable ?? false,
      ...(extra.name !== undefined ? { name: extra.name } : {}),
      partuuid: table.label === 'dos' ? mbrPartuuid(diskId, p.number) : (extra.uuid ?? '').toLowerCase(),
    };
  });
  const partuuids = new Map(partitions.map((p) => [p.partuuid, p.number]));
  let layoutProblem: string | null = null;
  let bootPart: Partition | undefined;
  let rootPart: Partition | undefined;
  try {
    ({ boot: bootPart, root: rootPart } = raspberryPiLayout(table, input.imagePath));
  } catch (error) {
    layoutProblem = (error as Error).message;
    bootPart = table.partitions.find((p) => p.number === 1);
    rootPart = table.partitions.find((p) => p.number === 2);
  }
  if (!bootPart || !rootPart) throw new UserError(`${input.imagePath}: ${layoutProblem ?? 'no partitions 1 and 2'}; nothing more can be read`);

  // Boot partition, read with mtools.
  const target = fatTarget(image, bootPart);
  const minfo = await run('minfo', ['-i', target, '::'], { log, env: MTOOLS_ENV, what: 'read the boot partition (is partition 1 FAT?)' });
  const fat = parseMinfo(minfo.stdout);
  const cluster = parseMinfoCluster(minfo.stdout);
  const bare = await run('mdir', ['-b', '-a', '-i', target, '::/'], { log, env: MTOOLS_ENV, allowFailure: true });
  const long = await run('mdir', ['-a', '-i', target, '::/'], { log, env: MTOOLS_ENV, allowFailure: true });
  const files = parseMdir(bare.stdout, long.stdout);
  const bootFile = async (name: string): Promise<string | null> => {
    const entry = files.find((f) => !f.dir && f.name.toLowerCase() === name.toLowerCase());
    if (!entry) return null;
    return (await run('mtype', ['-i', target, `::/${entry.name}`], { log, env: MTOOLS_ENV, what: `read ${name} from the boot partition` })).stdout;
  };
  const cmdlineText = await bootFile('cmdline.txt');
  const configTxt = await bootFile('config.txt');
  const cmdline = cmdlineText === null ? null : parseCmdline(cmdlineText, partuuids);
  const { kernels, initramfs: initrds } = bootKernels(files);
  const hasBoot = (name: string) => files.some((f) => !f.dir && f.name.toLowerCase() === name);
  const bootfs: BaseReport['bootfs'] = {
    partition: bootPart.number,
    fatBits: fat.fatBits,
    label: fat.label,
    serial: fat.serial,
    sectorsPerCluster: cluster.sectorsPerCluster,
    clusterBytes: cluster.sectorsPerCluster === null ? null : cluster.sectorsPerCluster * cluster.sectorSize,
    files,
    kernels,
    initramfs: initrds,
    configTxt: configTxt === null ? null : configTxtLines(configTxt),
    cmdline,
    nocloudSeed: { metaData: hasBoot('meta-data'), userData: hasBoot('user-data'), networkConfig: hasBoot('network-config') },
  };
  const initramfsSources: { source: string; path: string; size: number }[] = [];
  for (const name of initrds) {
    const out = join(work, `bootfs-${name}`);
    await run('mcopy', ['-n', '-i', target, `::/${name}`, out], { log, env: MTOOLS_ENV, what: `copy ${name} out of the boot partition` });
    initramfsSources.push({ source: `bootfs:${name}`, path: out, size: (await stat(out)).size });
  }

  // Root filesystem: a read-only loop device, mounted ro,noload (no journal replay).
  const loop = await attachPartition(image, rootPart, resources, log, { readOnly: true });
  // -f: print features this e2fsprogs does not know (as FEATURE_xx) instead of refusing the filesystem.
  const dumpe2fs = await run('dumpe2fs', ['-f', '-h', loop.device], { log, what: 'read the root filesystem (is partition 2 ext4?)' });
  const ext = parseDumpe2fs(dumpe2fs.stdout);
  // What this host's libext2fs can work with: the check prepare makes before it resizes (image/ext4.ts).
  const host = await hostExt4(log);
  const mountPoint = join(work, 'root');
  await mkdir(mountPoint);
  await mount(['-t', 'ext4', '-o', 'ro,noload', loop.device, mountPoint], log);
  resources.hold(`mount ${mountPoint}`, () => unmount(mountPoint, log));
  const root = new ImageRoot(mountPoint);

  const rootfs: BaseReport['rootfs'] = {
    partition: rootPart.number,
    ...ext,
    hostE2fsprogs: host.version,
    unknownToHost: ext.features.filter((f) => !host.supported.has(f)),
    needsNewerE2fsprogs: ext.features.flatMap((feature) => {
      const since = featureSince(feature);
      return since ? [{ feature, since }] : [];
    }),
  };

  const fstabText = await root.text('/etc/fstab');
  const fstabEntries = fstabText === null ? [] : parseFstab(fstabText);
  const fstab: BaseReport['fstab'] = {
    text: fstabText,
    entries: fstabEntries,
    bootMount: fstabEntries.find((e) => e.vfstype === 'vfat' && (e.file === '/boot/firmware' || e.file === '/boot'))?.file ?? null,
    foreignPartuuids: fstabEntries
      .map((e) => /^PARTUUID=(.+)$/i.exec(e.spec)?.[1]?.toLowerCase())
      .filter((id): id is string => id !== undefined && !partuuids.has(id)),
  };

  // debugfs on the read-only device, as the build reads the base's (image/machine-id.ts), by the same rules.
  const baseMachineId = await readBaseMachineId(loop.device, log);
  const dbusLink = await root.link(DBUS_MACHINE_ID);
  const machineId: BaseReport['machineId'] = {
    state: baseMachineId.kind,
    symlinkTarget: baseMachineId.kind === 'symlink' ? baseMachineId.target : null,
    ...firstBootOf(baseMachineId),
    dbusMachineId: dbusLink !== null ? 'symlink' : (await root.lexists(DBUS_MACHINE_ID)) ? 'file' : 'missing',
  };

  const { units, enabledLinks, defaultTarget } = await systemdUnits(root);

  const dpkg = parseDpkgStatus((await root.text('/var/lib/dpkg/status')) ?? '');
  const installed = dpkg.filter((p) => p.status.split(/\s+/)[2] === 'installed');
  const relevant = installed.filter((p) => (RELEVANT_PACKAGES as readonly string[]).includes(p.name) || p.name.startsWith('linux-image-'));
  const packagesMissing = RELEVANT_PACKAGES.filter((name) => !installed.some((p) => p.name === name));

  const cloudInitPackage = installed.find((p) => p.name === 'cloud-init');
  const cfgDNames = (await root.list('/etc/cloud/cloud.cfg.d')).filter((n) => n.endsWith('.cfg'));
  const cfgD = [];
  for (const name of cfgDNames) cfgD.push({ name, text: (await root.text(`/etc/cloud/cloud.cfg.d/${name}`)) ?? '' });
  const cloudConfig = parseCloudConfig(await root.text('/etc/cloud/cloud.cfg'), cfgD);
  const cloudInit: BaseReport['cloudInit'] = {
    installed: cloudInitPackage !== undefined || (await root.exists('/usr/bin/cloud-init')),
    version: cloudInitPackage?.version ?? null,
    disabled: (await root.lexists(CLOUD_INIT_DISABLED)) || (cmdline?.cloudInitDisabled ?? false),
    ...cloudConfig,
  };
  // The build's own detection (base/init-format.ts), so this report says what a build on this base would publish.
  const detected = await detectInitFormat(mountPoint, fstab.bootMount ?? '/boot/firmware', { cmdline: cmdline?.text ?? '' });
  const initFormat: BaseReport['initFormat'] = { value: detected.preferred, supported: detected.supported, reason: detected.evidence };

  // The initramfs: from the boot partition (Raspberry Pi OS), else /boot in the root (Debian's initrd.img-*).
  if (!initramfsSources.length) {
    for (const name of (await root.list('/boot')).filter((n) => /^initrd\.img-/.test(n))) {
      const path = await root.resolve(`/boot/${name}`);
      const size = (await stat(path).catch(() => undefined))?.size;
      if (size !== undefined) initramfsSources.push({ source: `rootfs:/boot/${name}`, path, size });
    }
  }
  const initramfs: InitramfsImage[] = [];
  for (const source of initramfsSources) {
    try {
      const listing = await listInitramfs(source.path);
      initramfs.push({ source: source.source, size: source.size, segments: listing.segments, entries: listing.names.length, resizeFiles: resizeFiles(listing.names), error: null });
    } catch (error) {
      initramfs.push({ source: source.source, size: source.size, segments: [], entries: 0, resizeFiles: [], error: (error as Error).message });
    }
  }
  const confD = [];
  for (const name of await root.list('/etc/initramfs-tools/conf.d')) confD.push((await root.text(`/etc/initramfs-tools/conf.d/${name}`)) ?? '');
  const initramfsConf = [(await root.text('/etc/initramfs-tools/initramfs.conf')) ?? '', ...confD];
  const initramfsTools = {
    updateInitramfs: shellAssignment([(await root.text('/etc/initramfs-tools/update-initramfs.conf')) ?? ''], 'update_initramfs'),
    modules: shellAssignment(initramfsConf, 'MODULES'),
    compress: shellAssignment(initramfsConf, 'COMPRESS'),
  };

  const sources = [];
  const sourcesList = await root.text(APT_SOURCES_LIST);
  if (sourcesList !== null) sources.push(...parseSourcesList(APT_SOURCES_LIST, sourcesList));
  for (const name of await root.list(APT_SOURCES_DIR)) {
    const file = `${APT_SOURCES_DIR}/${name}`;
    const text = await root.text(file);
    if (text === null) continue;
    if (name.endsWith('.list')) sources.push(...parseSourcesList(file, text));
    else if (name.endsWith('.sources')) sources.push(...parseDeb822Sources(file, text));
  }
  const apt: BaseReport['apt'] = {
    format: aptFormat(sources),
    sources,
    sourcesListLines: (sourcesList ?? '').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).length,
  };

  const passwd = parsePasswd((await root.text('/etc/passwd')) ?? '');
  const shadow = await root.text('/etc/shadow');
  const group = await root.text('/etc/group');
  const first = passwd.find((u) => u.uid === 1000);
  const defaultUser: BaseReport['defaultUser'] = first
    ? {
        name: first.name,
        uid: first.uid,
        gid: first.gid,
        home: first.home,
        shell: first.shell,
        passwd: first.line,
        password: shadowPasswordState(shadow, first.name),
        groups: groupsOf(group, first.name, first.gid),
      }
    : null;
  const otherUsers = passwd.filter((u) => u.uid >= 1000 && u.uid !== 1000 && u.uid < 65534 && u.name !== 'nobody').map((u) => `${u.name} (${u.uid})`);

  const ssh = {
    hostKeys: (await root.list('/etc/ssh')).filter((n) => /^ssh_host_.*_key$/.test(n)),
    sshdConfigD: await root.list('/etc/ssh/sshd_config.d'),
  };

  const localtime = await root.link('/etc/localtime');
  const etcTimezone = await root.text('/etc/timezone');
  const timezone = {
    localtime,
    localtimeResolves: await root.exists('/etc/localtime'),
    etcTimezone: etcTimezone?.trim() ?? null,
    legacyAliases: await root.exists('/usr/share/zoneinfo/Asia/Calcutta'),
  };

  const osReleaseText = (await root.text('/etc/os-release')) ?? (await root.text('/usr/lib/os-release')) ?? '';
  const rpiIssue = (await root.text('/etc/rpi-issue'))?.trim() ?? null;
  const { version, commit } = await toolVersion();

  const report: Omit<BaseReport, 'findings'> = {
    schemaVersion: 1,
    tool: `simplex-pi ${version}${commit ? ` (${commit})` : ''}`,
    image: { path: input.imagePath, compression: input.compression, sha256: input.sha256, downloadSha256: input.downloadSha256, size: input.size },
    partitionTable: { label: table.label, diskId, sectorSize: table.sectorSize, partitions, layoutProblem },
    bootfs,
    rootfs,
    osRelease: parseOsRelease(osReleaseText),
    rpiIssue,
    fstab,
    machineId,
    units,
    enabledLinks,
    defaultTarget,
    cloudInit,
    initFormat,
    initramfs,
    initramfsTools,
    packages: relevant.map((p) => ({ name: p.name, version: p.version, architecture: p.architecture, status: p.status })),
    packagesMissing,
    apt,
    defaultUser,
    otherUsers,
    ssh,
    timezone,
  };
  return baseReportSchema.parse({ ...report, findings: findingsOf(report) });
}

const UNIT_DIRS = ['/etc/systemd/system', '/usr/local/lib/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

async function systemdUnits(root: ImageRoot): Promise<{ units: UnitState[]; enabledLinks: string[]; defaultTarget: string | null }> {
  const linksIn = async (dir: string) => {
    const links: { by: string; unit: string; entry: string }[] = [];
    for (const name of await root.list(dir)) {
      const match = /^(.+)\.(wants|requires)$/.exec(name);
      if (!match) continue;
      for (const unit of await root.list(`${dir}/${name}`)) links.push({ by: match[1]!, unit, entry: `${name}/${unit}` });
    }
    return links;
  };
  const enabled = await linksIn('/etc/systemd/system');
  // /lib and /usr/lib are one directory on a merged-/usr system: count each real directory once.
  const staticLinks: { by: string; unit: string; entry: string }[] = [];
  const seen = new Set<string>();
  for (const dir of ['/usr/lib/systemd/system', '/lib/systemd/system']) {
    const real = await root.resolve(dir);
    if (seen.has(real)) continue;
    seen.add(real);
    staticLinks.push(...(await linksIn(dir)));
  }
  const units: UnitState[] = [];
  for (const unit of RELEVANT_UNITS) {
    const template = unit.replace(/@[^.]+\./, '@.');
    let path: string | null = null;
    let masked = false;
    for (const dir of UNIT_DIRS) {
      for (const name of template === unit ? [unit] : [unit, template]) {
        const candidate = `${dir}/${name}`;
        if (!(await root.lexists(candidate))) continue;
        const link = await root.link(candidate);
        if (link === '/dev/null') masked = true;
        else if (!path && (await root.exists(candidate))) path = candidate;
      }
      if (path || masked) break;
    }
    const text = path ? await root.text(path) : null;
    const conditions = (text ?? '').split('\n').map((l) => l.trim()).filter((l) => /^(Condition|Assert)\w+=/.test(l));
    units.push({
      unit,
      path,
      masked,
      enabledBy: enabled.filter((l) => l.unit === unit).map((l) => l.by),
      staticBy: staticLinks.filter((l) => l.unit === unit).map((l) => l.by),
      conditions,
      ...(UNIT_TEXT.has(unit) && text !== null ? { text } : {}),
    });
  }
  const defaultLink = (await root.link('/etc/systemd/system/default.target')) ?? (await root.link('/usr/lib/systemd/system/default.target'));
  return {
    units,
    enabledLinks: enabled.map((l) => l.entry).sort(),
    defaultTarget: defaultLink?.split('/').pop() ?? null,
  };
}
