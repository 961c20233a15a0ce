import { APT_SOURCES_LIST } from '../plan/layout.ts';
import { formatBytes } from '../format-bytes.ts';
import type { BaseReport, UnitState } from './schema.ts';

/** The human report of `simplex-pi inspect-base`: one section per thing the pipeline relies on, findings last. */

const MARK = { ok: 'ok  ', note: 'note', warn: 'WARN' } as const;

function indent(text: string, by = '    '): string {
  return text
    .replace(/\n+$/, '')
    .split('\n')
    .map((l) => `${by}${l}`)
    .join('\n');
}

const yesNo = (value: boolean) => (value ? 'yes' : 'no');
const sectors = (n: number) => `${n} (${formatBytes(n * 512)})`;

function unitLine(u: UnitState): string {
  const state = u.masked ? 'masked' : !u.path ? 'absent' : u.enabledBy.length ? `enabled (${u.enabledBy.join(', ')})` : u.staticBy.length ? `static (${u.staticBy.join(', ')})` : 'disabled';
  const first = u.conditions.includes('ConditionFirstBoot=yes') ? '  [ConditionFirstBoot=yes]' : '';
  return `  ${u.unit.padEnd(36)} ${state}${first}`;
}

export function renderReport(r: BaseReport): string {
  const lines: string[] = [];
  const section = (title: string) => lines.push('', title);
  const line = (text: string) => lines.push(`  ${text}`);

  lines.push(`inspect-base: ${r.image.path}  (${r.tool}; read only, nothing was written)`);
  line(`image: ${r.image.compression === 'xz' ? 'xz-compressed, ' : ''}${formatBytes(r.image.size)} uncompressed, sha256 ${r.image.sha256}`);
  if (r.image.downloadSha256) line(`.xz file sha256 ${r.image.downloadSha256}`);
  const os = r.osRelease.PRETTY_NAME ?? r.osRelease.NAME;
  const codename = r.osRelease.VERSION_CODENAME;
  if (os) line(`os-release: ${os}${codename && !os.includes(codename) ? ` (${codename})` : ''}`);
  if (r.rpiIssue) line(`rpi-issue: ${r.rpiIssue.split('\n')[0]}`);

  const t = r.partitionTable;
  section(`Partition table: ${t.label}, disk id ${t.diskId || '-'}, ${t.sectorSize}-byte sectors${t.layoutProblem ? `  (${t.layoutProblem})` : ''}`);
  for (const p of t.partitions) {
    line(`${p.number}  start ${sectors(p.start).padEnd(22)} size ${sectors(p.size).padEnd(24)} type ${p.type.padEnd(4)} PARTUUID ${p.partuuid}${p.bootable ? '  bootable' : ''}${p.name ? `  name "${p.name}"` : ''}`);
  }

  const b = r.bootfs;
  section(`Boot partition (${b.partition}): FAT${b.fatBits}, label "${b.label}", volume id ${b.serial.slice(0, 4)}-${b.serial.slice(4)}, cluster ${b.clusterBytes === null ? '?' : `${b.clusterBytes} bytes (${b.sectorsPerCluster} sector${b.sectorsPerCluster === 1 ? '' : 's'})`}`);
  const dirs = b.files.filter((f) => f.dir).map((f) => `${f.name}/`);
  const plain = b.files.filter((f) => !f.dir).map((f) => f.name);
  line(`${plain.length} file${plain.length === 1 ? '' : 's'}, ${dirs.length} director${dirs.length === 1 ? 'y' : 'ies'} at the top level:`);
  lines.push(indent(wrap([...dirs, ...plain].join('  '), 100)));
  line(`kernels: ${b.kernels.join(', ') || 'none'};  initramfs: ${b.initramfs.join(', ') || 'none'}`);
  if (b.configTxt?.length) line(`config.txt (kernel/initramfs lines): ${b.configTxt.join(' | ')}`);
  line(`NoCloud seed files: meta-data ${yesNo(b.nocloudSeed.metaData)}, user-data ${yesNo(b.nocloudSeed.userData)}, network-config ${yesNo(b.nocloudSeed.networkConfig)}`);
  if (b.cmdline) {
    const c = b.cmdline;
    line('cmdline.txt:');
    lines.push(indent(c.text));
    line(
      `resize: ${yesNo(c.resize)};  root: ${c.root.form}${c.root.value ? `=${c.root.value}` : ''}${c.root.form === 'PARTUUID' ? (c.root.matchesPartition ? ` (partition ${c.root.matchesPartition})` : ' (no partition of this image)') : ''};  ds: ${c.ds ?? 'none'}${c.init ? `;  init=${c.init}` : ''}${c.systemdUnit ? `;  systemd.unit=${c.systemdUnit}` : ''}${c.systemdRun ? `;  systemd.run=${c.systemdRun}` : ''}`,
    );
  } else line('cmdline.txt: missing');

  const f = r.rootfs;
  section(`Root filesystem (${f.partition}): ext4, label "${f.label}", UUID ${f.uuid}${f.state ? `, ${f.state}` : ''}`);
  line(`features: ${f.features.join(' ')}`);
  if (f.blockSize && f.blockCount) line(`${f.blockCount} blocks of ${f.blockSize} bytes (${formatBytes(f.blockCount * f.blockSize)}), ${f.freeBlocks ?? '?'} free`);
  line(
    `host e2fsprogs ${f.hostE2fsprogs ?? '?'}: ${f.unknownToHost.length ? `does NOT know ${f.unknownToHost.join(', ')}` : 'knows every feature'}${f.needsNewerE2fsprogs.length ? `;  recent features: ${f.needsNewerE2fsprogs.map((x) => `${x.feature} (≥ ${x.since})`).join(', ')}` : ''}`,
  );

  section('/etc/fstab');
  if (r.fstab.text === null) line('missing');
  else lines.push(indent(r.fstab.entries.map((e) => [e.spec, e.file, e.vfstype, e.options, e.freq, e.passno].join('  ')).join('\n') || '(no entries)'));

  const m = r.machineId;
  section(`/etc/machine-id: ${m.state}${m.symlinkTarget !== null ? ` → ${m.symlinkTarget}` : ''}  (/var/lib/dbus/machine-id: ${m.dbusMachineId})`);
  line(m.meaning);

  section(`First-boot and service units (default target ${r.defaultTarget ?? '?'})`);
  for (const u of r.units) lines.push(unitLine(u));
  for (const u of r.units.filter((x) => x.text)) {
    line(`${u.path}:`);
    lines.push(indent(u.text!.split('\n').filter((l) => l.trim() && !l.startsWith('#')).join('\n'), '      '));
  }
  line(`all enabled links (${r.enabledLinks.length}):`);
  lines.push(indent(wrap(r.enabledLinks.join('  '), 100)));

  const ci = r.cloudInit;
  section(`cloud-init: ${ci.installed ? `installed${ci.version ? ` ${ci.version}` : ''}` : 'not installed'}${ci.disabled ? ', DISABLED' : ''}`);
  if (ci.installed || ci.cloudCfg) {
    line(`cloud.cfg: ${ci.cloudCfg ? 'present' : 'missing'};  growpart: ${yesNo(ci.growpart)};  resizefs: ${yesNo(ci.resizefs)}`);
    line(`init modules:   ${ci.modules.init.join(', ') || '-'}`);
    line(`config modules: ${ci.modules.config.join(', ') || '-'}`);
    line(`final modules:  ${ci.modules.final.join(', ') || '-'}`);
    line(`cloud.cfg.d: ${ci.cfgD.map((d) => `${d.name} (${d.keys.join(', ') || 'empty'})`).join('; ') || 'none'}`);
    line(`datasource_list: ${ci.datasourceList ? `[${ci.datasourceList.join(', ')}]` : 'unset'};  NoCloud seedfrom: ${ci.nocloudSeedfrom ?? 'unset'};  default user: ${ci.defaultUser ?? 'unset'}`);
    for (const e of ci.parseErrors) line(`could not parse ${e}`);
  }
  section(`Raspberry Pi Imager init_format a build would publish: ${r.initFormat.value || '""'}`);
  line(r.initFormat.reason);
  line(`supported: ${r.initFormat.supported.map((f) => f || '""').join(', ')}`);

  section('Initramfs');
  if (!r.initramfs.length) line('none found (boot partition initramfs*, /boot/initrd.img-*)');
  for (const i of r.initramfs) {
    if (i.error) line(`${i.source} (${formatBytes(i.size)}): could not be read: ${i.error}`);
    else line(`${i.source} (${formatBytes(i.size)}, ${i.segments.join(' + ')}, ${i.entries} entries): ${i.resizeFiles.length ? i.resizeFiles.join(', ') : 'no resize scripts or tools'}`);
  }
  const it = r.initramfsTools;
  line(`initramfs-tools: update_initramfs=${it.updateInitramfs ?? '-'}, MODULES=${it.modules ?? '-'}, COMPRESS=${it.compress ?? '-'}`);

  section('Packages (/var/lib/dpkg/status)');
  for (const p of r.packages) line(`${p.name.padEnd(24)} ${p.version}${p.architecture ? `  ${p.architecture}` : ''}`);
  if (r.packagesMissing.length) line(`not installed: ${r.packagesMissing.join(', ')}`);

  section(`apt sources: ${r.apt.format}${r.apt.sourcesListLines === 0 ? ` (${APT_SOURCES_LIST} has no entries)` : ''}`);
  for (const s of r.apt.sources) line(`${s.file}: ${s.types.join(' ')} ${s.uris.join(' ')} ${s.suites.join(' ')} ${s.components.join(' ')}${s.enabled ? '' : '  (disabled)'}`);

  section('Users');
  if (r.defaultUser) {
    const u = r.defaultUser;
    line(u.passwd);
    line(`shell ${u.shell}, password ${u.password}, groups ${u.groups.join(',') || '-'}`);
  } else line('no user with uid 1000');
  if (r.otherUsers.length) line(`other users (uid ≥ 1000): ${r.otherUsers.join(', ')}`);
  line(`SSH host keys: ${r.ssh.hostKeys.join(', ') || 'none'};  sshd_config.d: ${r.ssh.sshdConfigD.join(', ') || 'empty'}`);
  line(`time zone: /etc/localtime -> ${r.timezone.localtime ?? '(not a link)'}${r.timezone.localtime && !r.timezone.localtimeResolves ? ' (DANGLING)' : ''}, /etc/timezone ${r.timezone.etcTimezone ?? '-'}, legacy aliases ${yesNo(r.timezone.legacyAliases)}`);

  section('What this means for simplex-pi');
  for (const finding of r.findings) lines.push(`${MARK[finding.level]}  ${finding.topic.padEnd(11)} ${finding.text}`);
  return `${lines.join('\n')}\n`;
}

function wrap(text: string, width: number): string {
  const out: string[] = [];
  let current = '';
  for (const word of text.split('  ')) {
    if (current && current.length + word.length + 2 > width) {
      out.push(current);
      current = word;
    } else current = current ? `${current}  ${word}` : word;
  }
  if (current) out.push(current);
  return out.join('\n');
}
