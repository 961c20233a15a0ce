import { parse as parseYaml } from 'yaml';
export { type Dumpe2fs, parseDumpe2fs } from '../image/ext4.ts';
import { CLOUD_CFG, CLOUD_CFG_D, type CloudConfigFile, cloudCfgSnippetOrder, mergeCloudConfig, moduleName } from '../image/cloud-init.ts';
import type { AptSource, BaseReport, BootFile, CloudInitFacts, Cmdline } from './schema.ts';

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

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
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

/**
 * cloud-init's configuration as it would merge it (image/cloud-init.ts, the rules the build uses), and the facts
 * inspect-base reports from it.
 */
export function parseCloudConfig(cloudCfg: string | null, cfgD: { name: string; text: string }[]): Omit<CloudInitFacts, 'installed' | 'version' | 'disabled'> {
  const files: CloudConfigFile[] = [
    ...(cloudCfg === null ? [] : [{ path: CLOUD_CFG, text: cloudCfg }]),
    ...cloudCfgSnippetOrder(cfgD.map((f) => f.name)).map((name) => ({ path: `${CLOUD_CFG_D}/${name}`, text: cfgD.find((f) => f.name === name)!.text })),
  ];
  const { merged, unreadable } = mergeCloudConfig(files);
  const list = (key: string) => (Array.isArray(merged[key]) ? (merged[key] as unknown[]).map(moduleName).filter((m): m is string => m !== null) : []);
  const modules = { init: list('cloud_init_modules'), config: list('cloud_config_modules'), final: list('cloud_final_modules') };
  const all = [...modules.init, ...modules.config, ...modules.final];
  const has = (name: string) => all.some((m) => m === name || m === `cc_${name}`);
  const nocloud = (merged.datasource as Record<string, unknown> | undefined)?.NoCloud as Record<string, unknown> | undefined;
  const user = ((merged.system_info as Record<string, unknown> | undefined)?.default_user as Record<string, unknown> | undefined)?.name;
  const keysOf = (text: string) => {
    try {
      const data: unknown = parseYaml(text);
      return data && typeof data === 'object' && !Array.isArray(data) ? Object.keys(data) : [];
    } catch {
      return [];
    }
  };
  return {
    cloudCfg: cloudCfg !== null,
    modules,
    growpart: has('growpart'),
    resizefs: has('resizefs'),
    cfgD: files.filter((f) => f.path !== CLOUD_CFG).map((f) => ({ name: f.path.slice(CLOUD_CFG_D.length + 1), keys: keysOf(f.text) })),
    datasourceList: Array.isArray(merged.datasource_list) ? merged.datasource_list.map(String) : null,
    nocloudSeedfrom: typeof nocloud?.seedfrom === 'string' ? nocloud.seedfrom : null,
    defaultUser: typeof user === 'string' ? user : null,
    parseErrors: unreadable.map((u) => `${u.path.split('/').pop()}: ${u.error}`),
  };
}
