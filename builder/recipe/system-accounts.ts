import { RELAY_USER, TOR_USER } from '../plan/layout.ts';

/**
 * The admin user gets `sudo` without a password (render.ts writes its sudoers rule), and configure makes it only
 * when no account of that name exists. A name that is already a service's own account would hand that service
 * root: any flaw in the daemon becomes a root shell. So the recipe refuses the well-known system accounts here,
 * and the build refuses any system account the base image itself has (builder/image/admin-user.ts).
 */

/**
 * Debian's static accounts (base-passwd's passwd.master, uid 0–99 and nobody), those of the packages Debian and
 * Raspberry Pi OS Lite install or commonly add (dbus, openssh, avahi, polkit, tpm2, chrony, ntp, dnsmasq, …),
 * and the two the image's own services run as.
 */
export const SYSTEM_ACCOUNTS: readonly string[] = [
  // base-passwd
  'root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup',
  'list', 'irc', 'gnats', 'nobody',
  // packages
  'messagebus', 'sshd', 'avahi', 'avahi-autoipd', 'polkitd', 'tss', 'ntp', 'ntpsec', 'dnsmasq', 'statd', 'tcpdump',
  'uuidd', 'usbmux', 'rtkit', 'pulse', 'pipewire', 'colord', 'saned', 'lightdm', 'geoclue', 'dhcpcd', 'syslog',
  'postfix', 'fwupd-refresh', 'cups-pk-helper', 'speech-dispatcher', 'hplip', 'nm-openvpn', 'nm-openconnect',
  'rpi-first-boot-wizard',
  // this image's services
  RELAY_USER, TOR_USER,
];

/** Families of system accounts: systemd's own (systemd-network, systemd-coredump, …) and Debian's newer `_name` form (_apt, _chrony, _rpc). */
export const SYSTEM_ACCOUNT_PREFIXES: readonly string[] = ['systemd-', '_'];

export function isSystemAccountName(name: string): boolean {
  return SYSTEM_ACCOUNTS.includes(name) || SYSTEM_ACCOUNT_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * User ids for people on Debian: adduser's FIRST_UID and LAST_UID (/etc/adduser.conf). Below are the system's own
 * accounts (Debian Policy 9.2.2: 0–99 static, 100–999 dynamic system users); just above, ids Debian allocates to
 * system accounts on demand (60000–64999), reserved ones and nobody (65534). With its default adduser.conf, adduser
 * never gives a person an id above 59999, so such an account in a base image is refused too: stopping the build
 * costs a rename, a wrong guess would cost root.
 */
export const FIRST_PERSON_UID = 1000;
export const LAST_PERSON_UID = 59999;
