import { compareVersions } from './parse.ts';
import type { BaseReport, Finding } from './schema.ts';

/** e2fsprogs on the oldest build host the README names (Ubuntu 22.04). */
const OLDEST_HOST_E2FSPROGS = { version: '1.46.5', host: 'Ubuntu 22.04' };

/**
 * What the facts mean for simplex-pi: each finding names what the pipeline (or a first boot of a card made from
 * this base) relies on and whether this image provides it. `warn` is something a build on this base gets wrong
 * or a first boot will not do; `note` is worth knowing; `ok` is a reliance that holds.
 */
export function findingsOf(r: Omit<BaseReport, 'findings'>): Finding[] {
  const out: Finding[] = [];
  const add = (level: Finding['level'], topic: string, text: string) => out.push({ level, topic, text });
  const unit = (name: string) => r.units.find((u) => u.unit === name);
  const enabled = (name: string) => (unit(name)?.enabledBy.length ?? 0) > 0 && !unit(name)?.masked;

  if (r.partitionTable.layoutProblem) add('warn', 'layout', r.partitionTable.layoutProblem);
  else add('ok', 'layout', `${r.partitionTable.label} table: FAT boot partition 1, root partition 2 (last), as the pipeline requires`);

  const cmdline = r.bootfs.cmdline;
  if (!cmdline) add('warn', 'cmdline', 'the boot partition has no cmdline.txt');
  else if (cmdline.root.form === 'PARTUUID') {
    if (cmdline.root.matchesPartition === 2) add('ok', 'cmdline', `root=PARTUUID=${cmdline.root.value} is partition 2 (the disk id is kept by the pipeline, so it stays valid)`);
    else add('warn', 'cmdline', `root=PARTUUID=${cmdline.root.value} names ${cmdline.root.matchesPartition ? `partition ${cmdline.root.matchesPartition}` : 'no partition of this image'}`);
  } else add('note', 'cmdline', `root= uses the ${cmdline.root.form} form (${cmdline.root.value || 'none'}), not PARTUUID=`);
  if (r.fstab.foreignPartuuids.length) add('warn', 'fstab', `fstab names PARTUUIDs that are not in this image: ${r.fstab.foreignPartuuids.join(', ')}`);
  if (!r.fstab.bootMount) add('warn', 'fstab', 'fstab mounts no vfat boot partition at /boot/firmware or /boot; the pipeline assumes /boot/firmware');

  const resizeScripts = r.initramfs.flatMap((i) => i.resizeFiles.filter((f) => /resize_early|growroot|growpart/.test(f)));
  if (cmdline?.resize) {
    if (resizeScripts.length) add('ok', 'resize', `\`resize\` is on the kernel command line and the initramfs has ${[...new Set(resizeScripts.map((f) => f.split('/').pop()))].join(', ')}: partition 2 grows on first boot`);
    else if (r.initramfs.length === 0) add('warn', 'resize', '`resize` is on the kernel command line, but there is no initramfs on the boot partition to act on it');
    else add('warn', 'resize', '`resize` is on the kernel command line, but no initramfs has a resize script (resize_early): the partition does not grow');
  } else add('note', 'resize', 'no `resize` on the kernel command line: the initramfs does not grow partition 2');

  const machine = r.machineId;
  const resize = unit('rpi-resize.service');
  const firstBootUnits = r.units.filter((u) => u.enabledBy.length && u.conditions.includes('ConditionFirstBoot=yes')).map((u) => u.unit);
  if (machine.firstBoot) add('ok', 'machine-id', `/etc/machine-id is ${machine.state}: the first boot is a systemd first boot${firstBootUnits.length ? ` (${firstBootUnits.join(', ')} will run)` : ''}; simplex-pi must leave it so`);
  else add('warn', 'machine-id', `/etc/machine-id is ${machine.state}: ${machine.meaning}${firstBootUnits.length ? `; ${firstBootUnits.join(', ')} will NOT run` : ''}`);

  const growfs = r.fstab.entries.some((e) => e.file === '/' && /x-systemd\.growfs/.test(e.options));
  const grows: string[] = [];
  if (resize && enabled('rpi-resize.service')) grows.push('rpi-resize.service (systemd-growfs-root, on a systemd first boot)');
  if (enabled('resize2fs_once.service')) grows.push('resize2fs_once.service');
  if (r.cloudInit.installed && !r.cloudInit.disabled && r.cloudInit.resizefs) grows.push("cloud-init's resizefs module (every boot)");
  if (growfs) grows.push('x-systemd.growfs on / in fstab');
  if (!grows.length) add('warn', 'growth', 'nothing in this image grows the root filesystem on first boot (no rpi-resize.service enabled, no resize2fs_once, no cloud-init resizefs, no x-systemd.growfs)');
  else add('note', 'growth', `the root filesystem is grown by: ${grows.join('; ')}`);
  if (r.cloudInit.installed && (r.cloudInit.growpart || r.cloudInit.resizefs)) {
    const modules = [r.cloudInit.growpart && 'growpart', r.cloudInit.resizefs && 'resizefs'].filter(Boolean).join(' and ');
    add('note', 'cloud-init', `cloud.cfg runs ${modules}, like Debian's stock configuration (Raspberry Pi OS's has neither)${r.cloudInit.disabled ? '; cloud-init is disabled here' : ''}`);
  }

  if (r.rootfs.unknownToHost.length) {
    add('warn', 'ext4', `this host's e2fsprogs ${r.rootfs.hostE2fsprogs ?? '?'} does not know the root filesystem's features ${r.rootfs.unknownToHost.join(', ')}: e2fsck and resize2fs refuse it; install a newer e2fsprogs`);
  } else {
    const newer = r.rootfs.needsNewerE2fsprogs.filter((f) => compareVersions(f.since, OLDEST_HOST_E2FSPROGS.version) > 0);
    if (newer.length) add('note', 'ext4', `${newer.map((f) => `${f.feature} needs e2fsprogs ≥ ${f.since}`).join(', ')} (${OLDEST_HOST_E2FSPROGS.host} has ${OLDEST_HOST_E2FSPROGS.version}); this host has ${r.rootfs.hostE2fsprogs ?? '?'}, which knows ${newer.length === 1 ? 'it' : 'them'}`);
    else add('ok', 'ext4', `every root filesystem feature is known to this host's e2fsprogs ${r.rootfs.hostE2fsprogs ?? ''}`.trim());
  }

  if (r.rootfs.features.includes('needs_recovery')) {
    add('warn', 'ext4', 'the root filesystem needs journal recovery (it was not unmounted cleanly); the journal was not replayed here (read-only), so its latest changes are not in this report');
  }

  add('note', 'init_format', `implies Raspberry Pi Imager init_format "${r.initFormat.value}": ${r.initFormat.reason}`);

  if (enabled('userconfig.service')) add('note', 'user', `userconf-pi's rename wizard (userconfig.service) is armed${enabled('getty@tty1.service') ? '' : ' and getty@tty1 is disabled'}: without Imager customisation it asks on the console which user to rename`);
  if (r.defaultUser) {
    const u = r.defaultUser;
    add('note', 'user', `first user ${u.name} (uid ${u.uid}), shell ${u.shell}, password ${u.password}${r.otherUsers.length ? `; other users: ${r.otherUsers.join(', ')}` : ''}`);
  } else add('note', 'user', 'no user with uid 1000');

  if (r.ssh.hostKeys.length) {
    add(enabled('regenerate_ssh_host_keys.service') ? 'note' : 'warn', 'ssh', `the image has SSH host keys (${r.ssh.hostKeys.join(', ')})${enabled('regenerate_ssh_host_keys.service') ? '; regenerate_ssh_host_keys.service replaces them on first boot' : ': every card would share them'}`);
  }
  if (r.ssh.sshdConfigD.length) add('note', 'ssh', `sshd_config.d already has ${r.ssh.sshdConfigD.join(', ')} (drop-ins are read in name order; the first value set wins)`);

  if (!r.timezone.legacyAliases) add('note', 'timezone', 'no legacy zone aliases (tzdata-legacy): names like Asia/Calcutta or Europe/Kiev do not exist here; use Asia/Kolkata, Europe/Kyiv');
  if (r.timezone.localtime && !r.timezone.localtimeResolves) add('warn', 'timezone', `/etc/localtime points at ${r.timezone.localtime}, which does not exist in the image`);

  if (r.initramfsTools.updateInitramfs === 'yes' && r.initramfsTools.modules === 'dep') {
    add('note', 'initramfs', 'update_initramfs=yes and MODULES=dep: a package that triggers initramfs-tools in the packages stage would rebuild it under emulation from the build host\'s view');
  }
  for (const broken of r.initramfs.filter((i) => i.error)) add('warn', 'initramfs', `${broken.source} could not be read: ${broken.error}`);

  add('note', 'apt', `apt sources: ${r.apt.format}${r.apt.format === 'deb822' && r.apt.sourcesListLines === 0 ? ' (sources.list empty)' : ''}`);
  if (r.packagesMissing.length) add('note', 'packages', `not installed: ${r.packagesMissing.join(', ')}`);
  return out;
}
