import { parse as parseYaml } from 'yaml';
import { messageOf } from '../errors.ts';
import type { AptSource, BaseReport, BootFile, CloudInitFacts, Cmdline, InitFormat, MachineIdState } from './schema.ts';

/** Pure parsers for the files and tool outputs `inspect-base` reads. Each takes text and returns facts. */

export function parseCmdline(text: string, partuuids: Map<string, number>): Cmdline {
  const tokens = text.trim().split(/\s+/).filter(Boolean);
  const value = (key: string) => {
    const token = [...tokens].reverse().find((t) => t.startsWith(`${key}=`));
    return token === undefined ? null : token.slice(key.length + 1);
  };
  const rootValue = value('root');
  let form: Cmdline['root']['form'] = 'missing';
  let rootRest = rootValue ?? '';
  if (rootValue !== null) {
    const match = /^(PARTUUID|LABEL|UUID|PARTLABEL)=(.*)$/.exec(rootValue);
    if (match) [form, rootRest] = [match[1] as Cmdline['root']['form'], match[2]!];
    else form = 'device';
  }
  return {
    text: text.replace(/\n+$/, ''),
    tokens,
    resize: tokens.includes('resize'),
    root: {
      form,
      value: rootRest,
      matchesPartition: form === 'PARTUUID' ? (partuuids.get(rootRest.toLowerCase()) ?? null) : null,
    },
    ds: tokens.find((t) => t.startsWith('ds=')) ?? null,
    init: value('init'),
    systemdUnit: value('systemd.unit'),
    systemdRun: value('systemd.run'),
    cloudInitDisabled: tokens.includes('cloud-init=disabled'),
  };
}

/** The PARTUUIDs the kernel derives: `<8 hex digits of the MBR disk id>-<NN>`, or the GPT partition GUIDs. */
export function mbrPartuuid(diskId: string, number: number): string {
  const hex = diskId.replace(/^0x/i, '').toLowerCase().padStart(8, '0');
  return `${hex}-${String(number).padStart(2, '0')}`;
}

export function parseFstab(text: string): BaseReport['fstab']['entries'] {
  const entries: BaseReport['fstab']['entries'] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [spec = '', file = '', vfstype = '', options = 'defaults', freq = '0', passno = '0'] = line.split(/\s+/);
    entries.push({ spec, file, vfstype, options, freq, passno });
  }
  return entries;
}

const REAL_ID = /^[0-9a-f]{32}$/;

/**
 * systemd's first-boot semantics (machine-id(5), systemd 257): a missing file or one reading `uninitialized`
 * makes the next boot a first boot; an empty file does not.
 */
export function machineIdState(content: string | null): { state: MachineIdState; firstBoot: boolean; meaning: string } {
  if (content === null) {
    return {
      state: 'missing',
      firstBoot: true,
      meaning: 'a first boot for systemd: ConditionFirstBoot=yes units (rpi-resize.service) run, and systemd writes a new id',
    };
  }
  const trimmed = content.trim();
  if (trimmed === '') {
    return {
      state: 'empty',
      firstBoot: false,
      meaning: 'NOT a first boot for systemd: ConditionFirstBoot=yes units (rpi-resize.service, so the root filesystem does not grow) are skipped; systemd makes a new id on the first boot',
    };
  }
  if (trimmed === 'uninitialized') {
    return {
      state: 'uninitialized',
      firstBoot: true,
      meaning: 'a first boot for systemd (what pi-gen writes): ConditionFirstBoot=yes units (rpi-resize.service) run, and the id is committed at first-boot-complete.target',
    };
  }
  if (REAL_ID.test(trimmed)) {
    return {
      state: 'id',
      firstBoot: false,
      meaning: 'a real id: every card made from this image shares it, and ConditionFirstBoot=yes units never run',
    };
  }
  return { state: 'other', firstBoot: false, meaning: 'unexpected content: systemd treats it as invalid and makes a new id, and the boot is not a first boot' };
}

export interface DpkgPackage {
  name: string;
  version: string;
  architecture: string;
  status: string;
}

export function parseDpkgStatus(text: string): DpkgPackage[] {
  const packages: DpkgPackage[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const match = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (match) fields.set(match[1]!.toLowerCase(), match[2]!.trim());
    }
    const name = fields.get('package');
    if (!name) continue;
    packages.push({ name, version: fields.get('version') ?? '', architecture: fields.get('architecture') ?? '', status: fields.get('status') ?? '' });
  }
  return packages;
}

export interface PasswdEntry {
  name: string;
  passwd: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
  line: string;
}

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [name = '', passwd = '', uid = '', gid = '', gecos = '', home = '', shell = ''] = line.split(':');
      return { name, passwd, uid: Number(uid), gid: Number(gid), gecos, home, shell, line };
    })
    .filter((entry) => entry.name && Number.isInteger(entry.uid));
}

/** The state of a user's password in /etc/shadow, never the hash. */
export function shadowPasswordState(shadow: string | null, name: string): 'locked' | 'none' | 'set' | 'no-shadow-entry' {
  const line = shadow?.split('\n').find((l) => l.split(':')[0] === name);
  if (line === undefined) return 'no-shadow-entry';
  const hash = line.split(':')[1] ?? '';
  if (hash === '') return 'none';
  if (hash.startsWith('!') || hash.startsWith('*')) return 'locked';
  return 'set';
}

export function groupsOf(groupText: string | null, name: string, gid: number): string[] {
  const groups: string[] = [];
  for (const line of (groupText ?? '').split('\n')) {
    const [group = '', , id = '', members = ''] = line.split(':');
    if (!group) continue;
    if (Number(id) === gid || members.split(',').includes(name)) groups.push(group);
  }
  return groups;
}

export function parseOsRelease(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    result[match[1]!] = match[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return result;
}

/** One-line sources.list entries; commented lines do not count. */
export function parseSourcesList(file: string, text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const match = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    sources.push({ file, format: 'list', types: [match[1]!], uris: [match[2]!], suites: [match[3]!], components: match[4]!.split(/\s+/).filter(Boolean), enabled: true });
  }
  return sources;
}

/** deb822 `.sources` files: one stanza per source, `Enabled: no` disables it. */
export function parseDeb822Sources(file: string, text: string): AptSource[] {
  const sources: AptSource[] = [];
  const stanzas = text.replace(/^#.*$/gm, '').split(/\n\s*\n/);
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && current) {
        fields.set(current, `${fields.get(current)} ${line.trim()}`);
        continue;
      }
      const match = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (match) {
        current = match[1]!.toLowerCase();
        fields.set(current, match[2]!.trim());
      }
    }
    if (!fields.has('types') && !fields.has('uris')) continue;
    const words = (key: string) => (fields.get(key) ?? '').split(/\s+/).filter(Boolean);
    sources.push({
      file,
      format: 'deb822',
      types: words('types'),
      uris: words('uris'),
      suites: words('suites'),
      components: words('components'),
      enabled: !/^(no|false|0)$/i.test(fields.get('enabled') ?? 'yes'),
    });
  }
  return sources;
}

export function aptFormat(sources: AptSource[]): BaseReport['apt']['format'] {
  const formats = new Set(sources.filter((s) => s.enabled).map((s) => s.format));
  if (formats.size === 0) return 'none';
  if (formats.size === 2) return 'mixed';
  return formats.has('deb822') ? 'deb822' : 'list';
}

export interface Dumpe2fs {
  label: string;
  uuid: string;
  features: string[];
  blockSize: number | null;
  blockCount: number | null;
  freeBlocks: number | null;
  state: string | null;
}

export function parseDumpe2fs(text: string): Dumpe2fs {
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? null;
  const number = (name: string) => {
    const value = field(name);
    return value === null || !/^\d+$/.test(value) ? null : Number(value);
  };
  const label = field('Filesystem volume name') ?? '';
  return {
    label: label === '<none>' ? '' : label,
    uuid: field('Filesystem UUID') ?? '',
    features: (field('Filesystem features') ?? '').split(/\s+/).filter(Boolean),
    blockSize: number('Block size'),
    blockCount: number('Block count'),
    freeBlocks: number('Free blocks'),
    state: field('Filesystem state'),
  };
}

/**
 * ext4 features that need a recent e2fsprogs, with the release that added them. A Trixie-built root (mke2fs
 * 1.47.2 defaults) has orphan_file and metadata_csum_seed; Ubuntu 22.04 has 1.46.5.
 */
export const E2FS_FEATURE_SINCE: Record<string, string> = {
  metadata_csum: '1.43',
  metadata_csum_seed: '1.43',
  large_dir: '1.44.0',
  casefold: '1.45.0',
  fast_commit: '1.46.0',
  orphan_file: '1.47.0',
};

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

export function parseE2fsprogsVersion(text: string): string | null {
  return /(?:dumpe2fs|e2fsck|mke2fs)\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? null;
}

export function parseMinfoCluster(text: string): { sectorsPerCluster: number | null; sectorSize: number } {
  const cluster = /cluster size:\s*(\d+)\s*sectors?/.exec(text)?.[1];
  const sector = /sector size:\s*(\d+)\s*bytes/.exec(text)?.[1];
  return { sectorsPerCluster: cluster ? Number(cluster) : null, sectorSize: sector ? Number(sector) : 512 };
}

/**
 * Top-level entries of a FAT directory: names from `mdir -b` (directories end in /), sizes from the long
 * listing (`mdir`), where a line shows the 8.3 name, extension, size or <DIR>, date, time and the long name.
 */
export function parseMdir(bare: string, long: string): BootFile[] {
  const sizes = new Map<string, number | null>();
  for (const line of long.split('\n')) {
    const match = /^(\S+)\s+(\S*)\s+(\d+|<DIR>)\s+\d{4}-\d\d-\d\d\s+\d\d?:\d\d\s*(.*)$/.exec(line);
    if (!match) continue;
    const size = match[3] === '<DIR>' ? null : Number(match[3]);
    const longName = match[4]!.trim();
    const shortName = match[2] ? `${match[1]}.${match[2]}` : match[1]!;
    sizes.set((longName || shortName).toLowerCase(), size);
    sizes.set(shortName.toLowerCase(), size);
  }
  return bare
    .split('\n')
    .map((l) => l.trim().replace(/^::\//, ''))
    .filter(Boolean)
    .map((entry) => {
      const dir = entry.endsWith('/');
      const name = dir ? entry.slice(0, -1) : entry;
      return { name, dir, size: dir ? null : (sizes.get(name.toLowerCase()) ?? null) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The kernel images and initramfs files a Raspberry Pi's firmware may load from the boot partition. */
export function bootKernels(files: BootFile[]): { kernels: string[]; initramfs: string[] } {
  const names = files.filter((f) => !f.dir).map((f) => f.name);
  return {
    kernels: names.filter((n) => /^(kernel.*\.img|vmlinuz.*|Image.*)$/i.test(n)),
    initramfs: names.filter((n) => /^(initramfs.*|initrd.*)$/i.test(n)),
  };
}

export function configTxtLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(\[.*\]|kernel\s*=|initramfs\b|auto_initramfs\s*=|os_prefix\s*=|arm_64bit\s*=|cmdline\s*=)/i.test(l));
}

/** `key=value` shell-style config (initramfs-tools): the last assignment wins. */
export function shellAssignment(texts: string[], key: string): string | null {
  let value: string | null = null;
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const match = new RegExp(`^\\s*${key}=(.*)$`).exec(line);
      if (match) value = match[1]!.trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return value;
}

function moduleName(entry: unknown): string | null {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry) && typeof entry[0] === 'string') return entry[0];
  if (entry && typeof entry === 'object' && 'name' in entry && typeof entry.name === 'string') return entry.name;
  return null;
}

/**
 * cloud-init's configuration as it would merge it: /etc/cloud/cloud.cfg, then /etc/cloud/cloud.cfg.d/*.cfg in
 * name order, later files replacing top-level keys (datasource is merged per data source).
 */
export function parseCloudConfig(cloudCfg: string | null, cfgD: { name: string; text: string }[]): Omit<CloudInitFacts, 'installed' | 'version' | 'disabled'> {
  const parseErrors: string[] = [];
  const load = (name: string, text: string): Record<string, unknown> => {
    try {
      const value: unknown = parseYaml(text);
      return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
    } catch (error) {
      parseErrors.push(`${name}: ${messageOf(error).split('\n')[0]}`);
      return {};
    }
  };
  const documents = [...(cloudCfg === null ? [] : [{ name: 'cloud.cfg', data: load('cloud.cfg', cloudCfg) }]), ...cfgD.map((f) => ({ name: f.name, data: load(f.name, f.text) }))];
  const modules = { init: [] as string[], config: [] as string[], final: [] as string[] };
  let datasourceList: string[] | null = null;
  let seedfrom: string | null = null;
  let defaultUser: string | null = null;
  for (const { data } of documents) {
    for (const [key, stage] of [['cloud_init_modules', 'init'], ['cloud_config_modules', 'config'], ['cloud_final_modules', 'final']] as const) {
      const list = data[key];
      if (Array.isArray(list)) modules[stage] = list.map(moduleName).filter((m): m is string => m !== null);
    }
    if (Array.isArray(data.datasource_list)) datasourceList = data.datasource_list.map(String);
    const nocloud = (data.datasource as Record<string, unknown> | undefined)?.NoCloud as Record<string, unknown> | undefined;
    if (nocloud && typeof nocloud.seedfrom === 'string') seedfrom = nocloud.seedfrom;
    const user = ((data.system_info as Record<string, unknown> | undefined)?.default_user as Record<string, unknown> | undefined)?.name;
    if (typeof user === 'string') defaultUser = user;
  }
  const all = [...modules.init, ...modules.config, ...modules.final];
  const has = (name: string) => all.some((m) => m === name || m === `cc_${name}`);
  return {
    cloudCfg: cloudCfg !== null,
    modules,
    growpart: has('growpart'),
    resizefs: has('resizefs'),
    cfgD: documents.filter((d) => d.name !== 'cloud.cfg').map((d) => ({ name: d.name, keys: Object.keys(d.data) })),
    datasourceList,
    nocloudSeedfrom: seedfrom,
    defaultUser,
    parseErrors,
  };
}

export interface InitFormatEvidence {
  cloudInitInstalled: boolean;
  cloudInitDisabled: boolean;
  datasourceList: string[] | null;
  nocloudSeedfrom: string | null;
  bootMount: string;
  /** The boot partition has meta-data or user-data: a NoCloud seed. */
  seedOnBootfs: boolean;
  /** /usr/lib/raspberrypi-sys-mods/imager_custom: the hook Imager's systemd-format firstrun.sh calls. */
  imagerCustom: boolean;
  /** Bookworm-era `init=/usr/lib/raspberrypi-sys-mods/firstboot` on the kernel command line. */
  sysModsFirstboot: boolean;
}

/**
 * The Raspberry Pi Imager customisation format an image understands: cloud-init reading a NoCloud seed from the
 * boot partition → cloudinit-rpi; raspberrypi-sys-mods' hook for Imager's firstrun.sh → systemd; else none.
 */
export function impliedInitFormat(e: InitFormatEvidence): { value: InitFormat; reason: string } {
  const nocloudListed = e.datasourceList === null || e.datasourceList.some((d) => d.toLowerCase() === 'nocloud');
  const boot = e.bootMount.replace(/\/$/, '');
  const seedOnBoot = e.nocloudSeedfrom !== null && e.nocloudSeedfrom.replace(/^file:\/\//, '').replace(/\/$/, '') === boot;
  if (e.cloudInitInstalled && !e.cloudInitDisabled && nocloudListed && (seedOnBoot || e.seedOnBootfs)) {
    const where = seedOnBoot ? `NoCloud seedfrom ${e.nocloudSeedfrom}` : 'NoCloud seed files on the boot partition';
    return { value: 'cloudinit-rpi', reason: `cloud-init is installed and enabled, datasource_list ${e.datasourceList ? `[${e.datasourceList.join(', ')}]` : 'unset (all)'}, ${where}` };
  }
  if (e.imagerCustom || e.sysModsFirstboot) {
    const what = e.imagerCustom ? '/usr/lib/raspberrypi-sys-mods/imager_custom (the hook firstrun.sh calls)' : 'init=/usr/lib/raspberrypi-sys-mods/firstboot on the kernel command line';
    const why = e.cloudInitInstalled ? ' (cloud-init is installed but does not read a NoCloud seed from the boot partition)' : '';
    return { value: 'systemd', reason: `${what}${why}` };
  }
  if (e.cloudInitInstalled) {
    const why = e.cloudInitDisabled ? 'it is disabled' : !nocloudListed ? `NoCloud is not in datasource_list [${e.datasourceList?.join(', ')}]` : `no NoCloud seed on ${boot}`;
    return { value: 'none', reason: `cloud-init is installed but ${why}, and there is no Imager systemd hook` };
  }
  return { value: 'none', reason: 'no cloud-init and no Imager systemd hook (raspberrypi-sys-mods imager_custom)' };
}
