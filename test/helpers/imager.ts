import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { fatTarget } from '../../builder/image/bootfs.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { scratch } from './env.ts';

/**
 * What Raspberry Pi Imager 2.x writes to a flashed card's FAT partition 1 when the user chooses "OS
 * customisation", for each `init_format` (raspberrypi/rpi-imager src/customization_generator.cpp and
 * downloadthread.cpp, read at commit 056cf6d): our own code reproducing the documented output, so tests can
 * see what a customised card boots with. Files go in with mtools; nothing is mounted.
 *
 * - `cloudinit-rpi` (current Raspberry Pi OS Trixie): meta-data `instance-id: rpi-imager-<ms>`, user-data
 *   `#cloud-config` with host name, time zone, keyboard, the user (yescrypt hash, SSH keys, sudo), SSH
 *   settings; network-config only with a Wi-Fi SSID; ` ds=nocloud;i=<instance-id>` appended to cmdline.txt
 *   (and ` cfg80211.ieee80211_regdom=XX` for a Wi-Fi country without an SSID).
 * - `systemd` (Bookworm, Trixie 2025-10-01): firstrun.sh in the FAT root and ` systemd.run=/boot/firstrun.sh
 *   systemd.run_success_action=reboot systemd.unit=kernel-command-line.target` appended to cmdline.txt.
 * - `none`: Imager writes nothing.
 */

export type InitFormat = 'cloudinit-rpi' | 'systemd' | 'none';

export interface ImagerSettings {
  hostname?: string;
  timezone?: string;
  keyboard?: string;
  /** The user Imager creates (or renames UID 1000 to). */
  userName?: string;
  /** Imager stores the password crypted (yescrypt on 2.x): see `yescrypt`. */
  passwordHash?: string;
  sshEnabled?: boolean;
  sshPasswordAuth?: boolean;
  sshAuthorizedKeys?: string[];
  wifiSsid?: string;
  wifiCountry?: string;
}

const MTOOLS = { MTOOLS_SKIP_CHECK: '1' };

/** A yescrypt hash as Imager 2.x stores the password (mkpasswd from the whois package). */
export async function yescrypt(password: string): Promise<string> {
  const { stdout } = await execa('mkpasswd', ['--method=yescrypt', '--stdin'], { input: password });
  return stdout.trim();
}

export function cloudInitUserData(s: ImagerSettings): string {
  const lines: string[] = [];
  if (s.hostname) {
    lines.push(`hostname: ${s.hostname}`, 'manage_etc_hosts: true', 'packages:', '- avahi-daemon', 'apt:', '  conf: |', '    Acquire {', '      Check-Date "false";', '    };');
  }
  if (s.timezone) lines.push(`timezone: ${s.timezone}`);
  if (s.keyboard) lines.push('keyboard:', '  model: pc105', `  layout: "${s.keyboard}"`);
  if (s.sshEnabled) {
    lines.push('enable_ssh: true');
    const keys = s.sshAuthorizedKeys ?? [];
    if (s.userName || keys.length) {
      lines.push('users:', `- name: ${s.userName ?? 'pi'}`, '  groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo', '  shell: /bin/bash');
      if (s.passwordHash) lines.push('  lock_passwd: false', `  passwd: ${s.passwordHash}`);
      else if (keys.length) lines.push('  lock_passwd: true');
      if (keys.length) lines.push('  ssh_authorized_keys:', ...keys.map((k) => `    - ${k}`), '  sudo: ALL=(ALL) NOPASSWD:ALL');
    }
    if (s.sshPasswordAuth) lines.push('ssh_pwauth: true');
  }
  if (s.wifiCountry && !s.wifiSsid) {
    lines.push('runcmd:', '  - [ rfkill, unblock, wifi ]', '  - [ sh, -c, "for f in /var/lib/systemd/rfkill/*:wlan; do echo 0 > \\"$f\\"; done" ]');
  }
  return `#cloud-config\n${lines.map((l) => `${l}\n`).join('')}`;
}

export function cloudInitNetworkConfig(s: ImagerSettings): string | undefined {
  if (!s.wifiSsid) return undefined;
  return [
    'network:',
    '  version: 2',
    '  wifis:',
    '    wlan0:',
    '      dhcp4: true',
    ...(s.wifiCountry ? [`      regulatory-domain: "${s.wifiCountry.toUpperCase()}"`] : []),
    '      access-points:',
    `        "${s.wifiSsid.replaceAll('"', '\\"')}":`,
    '          password: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"',
    '      optional: true',
    '',
  ].join('\n');
}

/** The systemd-format firstrun.sh, reduced to the parts a test looks at (host name, keys, user, clean-up). */
export function firstrunScript(s: ImagerSettings): string {
  const lines = ['#!/bin/sh', '', 'set +e', ''];
  if (s.hostname) {
    lines.push(
      'CURRENT_HOSTNAME=$(cat /etc/hostname | tr -d " \\t\\n\\r")',
      'if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then',
      `   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname ${s.hostname}`,
      'else',
      `   echo ${s.hostname} >/etc/hostname`,
      `   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t${s.hostname}/g" /etc/hosts`,
      'fi',
    );
  }
  lines.push('FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)', 'FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)');
  if (s.userName || s.passwordHash) {
    const user = s.userName ?? 'pi';
    lines.push(
      'if [ -f /usr/lib/userconf-pi/userconf ]; then',
      `   /usr/lib/userconf-pi/userconf '${user}' '${s.passwordHash ?? ''}'`,
      'else',
      ...(s.passwordHash ? [`   echo "$FIRSTUSER:${s.passwordHash}" | chpasswd -e`] : []),
      `   if [ "$FIRSTUSER" != "${user}" ]; then`,
      `      usermod -l "${user}" "$FIRSTUSER"`,
      `      usermod -m -d "/home/${user}" "${user}"`,
      `      groupmod -n "${user}" "$FIRSTUSER"`,
      '   fi',
      'fi',
    );
  }
  lines.push('rm -f /boot/firstrun.sh', "sed -i 's| systemd.run.*||g' /boot/cmdline.txt", 'exit 0', '');
  return lines.join('\n');
}

export interface Customised {
  format: InitFormat;
  instanceId?: string;
  cmdline: string;
}

/** Customise a flashed card (an image file) as Imager 2.x would for `format`. */
export async function imagerCustomise(card: string, format: InitFormat, settings: ImagerSettings, now = Date.now()): Promise<Customised> {
  const { boot } = raspberryPiLayout(await readPartitionTable(card));
  const fat = fatTarget(card, boot);
  // Imager's files as written to the card, kept with the test's scratch (SIMPLEX_PI_KEEP_SCRATCH=1 keeps them).
  const dir = await scratch('imager');
  const put = async (name: string, content: string) => {
    await writeFile(join(dir, name), content);
    await execa('mcopy', ['-o', '-i', fat, join(dir, name), `::/${name}`], { env: MTOOLS });
  };
  await execa('mcopy', ['-o', '-n', '-i', fat, '::/cmdline.txt', join(dir, 'cmdline.in')], { env: MTOOLS });
  let cmdline = (await readFile(join(dir, 'cmdline.in'), 'utf8')).trim();
  let instanceId: string | undefined;
  if (format === 'cloudinit-rpi') {
    instanceId = `rpi-imager-${now}`;
    await put('meta-data', `instance-id: ${instanceId}\n`);
    await put('user-data', cloudInitUserData(settings));
    const network = cloudInitNetworkConfig(settings);
    if (network) await put('network-config', network);
    cmdline += ` ds=nocloud;i=${instanceId}`;
    if (settings.wifiCountry && !settings.wifiSsid) cmdline += ` cfg80211.ieee80211_regdom=${settings.wifiCountry.toUpperCase()}`;
  } else if (format === 'systemd') {
    await put('firstrun.sh', firstrunScript(settings));
    cmdline += ' systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target';
  }
  if (format !== 'none') await put('cmdline.txt', `${cmdline}\n`);
  return { format, instanceId, cmdline };
}
