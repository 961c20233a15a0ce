import { lstat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What Raspberry Pi OS runs that this appliance never uses and that makes it visible or reachable beside Tor:
 * avahi announces the Pi's name and services to everyone on the LAN (mDNS), and Bluetooth is a radio the firewall
 * does not cover. configure masks the units the base has (a mask also outlasts a package upgrade that would
 * enable them again) and turns the Bluetooth chip off in config.txt.
 */
export const EXPOSING_UNITS: ReadonlyArray<{ unit: string; why: string }> = [
  { unit: 'avahi-daemon.service', why: "announces the Pi's name and services to the local network (mDNS)" },
  { unit: 'avahi-daemon.socket', why: 'would start avahi-daemon when asked' },
  { unit: 'bluetooth.service', why: 'Bluetooth, a radio the firewall does not cover' },
  { unit: 'hciuart.service', why: 'attaches the Bluetooth chip to its serial line' },
];

/** Where a base keeps unit files (/lib is /usr/lib on a merged-/usr base, but not on every one). */
const UNIT_DIRS = ['etc/systemd/system', 'usr/lib/systemd/system', 'lib/systemd/system'];

export async function unitPresent(root: string, unit: string): Promise<boolean> {
  for (const dir of UNIT_DIRS) if (await lstat(join(root, dir, unit)).catch(() => undefined)) return true;
  return false;
}

/**
 * configure: mask those of EXPOSING_UNITS the base has; `systemctl` runs the image's own systemctl. Returns what it
 * masked, for the build log.
 */
export async function maskExposingUnits(root: string, systemctl: (args: string[]) => Promise<unknown>): Promise<Array<{ unit: string; why: string }>> {
  const present: Array<{ unit: string; why: string }> = [];
  for (const entry of EXPOSING_UNITS) if (await unitPresent(root, entry.unit)) present.push(entry);
  if (present.length) await systemctl(['mask', ...present.map((p) => p.unit)]);
  return present;
}

/** The overlay that turns the Bluetooth chip off (and gives its UART back to the GPIO pins); on a Pi 5 too. */
export const DISABLE_BT = 'dtoverlay=disable-bt';

/**
 * config.txt with DISABLE_BT in effect on every model: unchanged where it already is (before any filter or
 * under [all]), else appended under an [all] of its own, since the file may end inside a filter such as [cm4].
 */
export function withBluetoothOff(configTxt: string): string {
  let everyModel = true;
  for (const raw of configTxt.split('\n')) {
    const line = raw.trim();
    const filter = /^\[(.*)\]/.exec(line);
    if (filter) everyModel = filter[1]!.trim().toLowerCase() === 'all';
    else if (everyModel && line === DISABLE_BT) return configTxt;
  }
  const kept = configTxt.length ? configTxt.replace(/\n*$/, '\n\n') : '';
  return `${kept}# simplex-pi: Bluetooth off, a radio this relay never uses (hciuart and bluetooth are masked too).\n[all]\n${DISABLE_BT}\n`;
}

/**
 * Debian's raspi-firmware writes config.txt anew at every kernel update (its postinst hook), and Debian's firmware
 * has no overlays: there, an edit would not last and would name an overlay that is not there.
 */
export const DEBIAN_CONFIG_TXT_HOOK = 'etc/kernel/postinst.d/z50-raspi-firmware';

/**
 * configure: Bluetooth off in the boot partition's config.txt (its files are at `bootPath` in the root during the
 * build), on a base that has one of its own; says what it did, for the build log.
 */
export async function turnBluetoothOff(root: string, bootPath: string): Promise<string> {
  const file = join(root, bootPath, 'config.txt');
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (text === undefined) return `no config.txt in the boot partition: Bluetooth left as the base has it`;
  if (await lstat(join(root, DEBIAN_CONFIG_TXT_HOOK)).catch(() => undefined)) {
    return "config.txt is Debian's raspi-firmware's, rewritten at every kernel update and without overlays: left as it is";
  }
  const updated = withBluetoothOff(text);
  if (updated === text) return `config.txt already has ${DISABLE_BT}`;
  await writeFile(file, updated);
  return `config.txt: ${DISABLE_BT} (Bluetooth off)`;
}
