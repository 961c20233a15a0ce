/**
 * The image's layout: every path, file name, environment variable, port, user and unit name that the build, the
 * rendered configuration (templates get it as `layout`), the device program, `status` and the tests rely on.
 * Defined here once and read everywhere else; test/unit/layout.test.ts fails when one of these literals is typed
 * anywhere else in builder/, overlays/ or ci/. No imports: the device bundle includes this module as it is.
 */

/** What the device program reads: the build's plan, serialised (plan/plan.ts). */
export const PLAN_PATH = '/etc/simplex-pi/plan.json';
/**
 * 2: each relay carries its unit's paths, names and variables; 3: backups; 4: the onion watchdog; 5: relay updates
 * (plan.json of an image is read by its own program, and by `simplex-pi restore`, which refuses a card whose plan has
 * another version).
 */
export const PLAN_SCHEMA_VERSION = 5;

// Programs.
export const BINARY_DIR = '/usr/local/bin';
/** The device program, bundled to one file (builder/device/bundle.ts), and the command that runs it with Node. */
export const DEVICE_PROGRAM = '/usr/lib/simplex-pi/simplex-pi.mjs';
export const DEVICE_COMMAND = `${BINARY_DIR}/simplex-pi`;
/** Helper scripts the units run (overlays/rootfs/usr/local/lib/simplex-pi/). */
export const DEVICE_LIB_DIR = '/usr/local/lib/simplex-pi';
export const SET_ASIDE_TORN_RECORD = `${DEVICE_LIB_DIR}/set-aside-torn-record`;
/** Run as root before each relay starts: refuses the start unless the firewall's table is loaded. */
export const REQUIRE_FIREWALL = `${DEVICE_LIB_DIR}/require-firewall`;
/** Runs each relay with the passwords taken out of its output, which the journal keeps (the script says how). */
export const REDACT_PASSWORDS = `${DEVICE_LIB_DIR}/redact-passwords`;
/**
 * The simplexmq releases on the card, side by side: one directory per release (`6.5.2/smp-server`, `…/xftp-server`)
 * and RELAY_RELEASE_CURRENT, a symlink to the one the relays run. BINARY_DIR's smp-server and xftp-server are
 * symlinks through it, so `simplex-pi update` switches every binary at once by replacing that one symlink, and
 * rolls back by pointing it at the previous release again (device/relay-releases.ts). All links are relative, so
 * they resolve the same in the image mounted on the build host.
 */
export const RELAY_RELEASES_DIR = `${DEVICE_LIB_DIR}/simplexmq`;
export const RELAY_RELEASE_CURRENT = `${RELAY_RELEASES_DIR}/current`;

/**
 * What the device program keeps: root only (0700), never in the image (first boot makes all of it). systemd makes
 * it for the first-boot unit (its StateDirectory=, a name under /var/lib).
 */
export const STATE_DIRECTORY = 'simplex-pi';
export const STATE_DIR = `/var/lib/${STATE_DIRECTORY}`;
export const STATE = {
  /** Written last by a finished first boot; its unit's condition skips later boots, the export unit waits for it. */
  firstbootDone: `${STATE_DIR}/firstboot.done`,
  /** Every server and its address, as JSON: the USB export reads it. */
  servers: `${STATE_DIR}/servers.json`,
  /** One `name<TAB>address` line per server: `simplex-pi addresses` and `status` show it. */
  addresses: `${STATE_DIR}/addresses.txt`,
  /** Client authorization keys made on the Pi (tor.client_auth.generate), private halves included. */
  clientKeys: `${STATE_DIR}/client-auth.json`,
  /** The Pi's own client key for its onion services (the relays route messages for each other; the watchdog reaches each); never exported. */
  selfClientKey: `${STATE_DIR}/client-auth-self.json`,
  /** The admin's client key for the SSH onion service: members' keys never open it (exported under ADMIN_FOLDER). */
  adminClientKey: `${STATE_DIR}/client-auth-admin.json`,
  /**
   * Written by first boot, removed by the first export that writes the secrets to a stick: while it exists, the
   * one labelled USB stick plugged in gets them without anyone logging in. Afterwards only `export` run by root does.
   */
  exportPending: `${STATE_DIR}/export.pending`,
  /**
   * The pending mark, taken by the export that writes the secrets before it opens the stick: a write that fails
   * halfway, a card that became read-only or a power cut never leave the next stranger's stick armed. Put back
   * only when the stick was refused before anything was written to it.
   */
  exportClaimed: `${STATE_DIR}/export.claimed`,
  /** One JSON line per export of secrets (when, which stick, plain or encrypted): `status` shows the last. */
  exportLog: `${STATE_DIR}/exports.log`,
  /** One JSON line per backup made on this Pi (when, where to, encrypted how): `status` shows the last. */
  backupLog: `${STATE_DIR}/backups.log`,
  /**
   * Written by `simplex-pi restore` into a card that was never booted: which backup its identities came from. First
   * boot keeps those identities, migrates their INI to this image's simplexmq, and says loudly that the card the
   * backup came from must stay off; `status` shows it for good.
   */
  restored: `${STATE_DIR}/restored.json`,
  /** The onion watchdog's state: per service, the last check, the outage it is in and the steps taken (`status` shows it). */
  watchdog: `${STATE_DIR}/watchdog.json`,
  /** One JSON line per thing the watchdog saw change or did (a service failing, a step, a recovery, giving up). */
  watchdogLog: `${STATE_DIR}/watchdog.log`,
  /** The Debian base's one-time root filesystem growth (overlays/debian-base). */
  growrootDone: `${STATE_DIR}/growroot.done`,
  /** One JSON line per relay update tried (`simplex-pi update`): from and to which release, and how it ended. */
  updateLog: `${STATE_DIR}/updates.log`,
} as const;

/**
 * Held (a file naming the process) while `simplex-pi update` restarts the relays: the watchdog leaves its round to
 * the update rather than meet a relay it is restarting with steps of its own. In /run: gone with a power cut.
 */
export const UPDATE_LOCK = '/run/simplex-pi-update.lock';

// Users.
/** The unprivileged user every relay runs as. */
export const RELAY_USER = 'simplex';
/** Debian's tor runs as this user; its onion service directories must be its own. */
export const TOR_USER = 'debian-tor';
/**
 * systemd-timesyncd's user: with outbound tor-only, the firewall lets it alone send NTP and look up its servers'
 * names. A Pi has no clock that runs while it is off (the 5 only with a battery), and Tor cannot work with a wrong one.
 */
export const TIMESYNC_USER = 'systemd-timesync';
/** systemd-resolved's user, where the base has it (the Debian base): it looks up names for every other program. */
export const RESOLVED_USER = 'systemd-resolve';

// Units.
export const UNITS = {
  firstboot: 'simplex-pi-firstboot.service',
  /**
   * Started by the udev rule for a labelled USB stick, and at boot after first boot. One unit, not a template:
   * systemd never runs it twice at once, however many partitions or sticks appear (security review L2).
   */
  export: 'simplex-pi-export.service',
  /** Debian's tor: tor.service is a wrapper; the daemon is the tor@default instance. */
  torWrapper: 'tor.service',
  tor: 'tor@default.service',
  nftables: 'nftables.service',
  ssh: 'ssh.service',
  growroot: 'simplex-pi-growroot.service',
  /** One round of the onion watchdog (device/watchdog.ts), started by its timer. */
  watchdog: 'simplex-pi-watchdog.service',
  watchdogTimer: 'simplex-pi-watchdog.timer',
  /** `simplex-pi update --from update.check_url --if-newer`, started by its timer (only with update.check_url). */
  update: 'simplex-pi-update.service',
  updateTimer: 'simplex-pi-update.timer',
} as const;

/** A unit as people type it (`journalctl -u simplex-pi-firstboot`): without `.service`. */
export function unitName(unit: string): string {
  return unit.replace(/\.service$/, '');
}

// Security updates (README: Security updates; docs/security-updates.md).
/** The image's apt sources: with outbound tor-only, configure rewrites them to reach the archives through Tor (image/apt-sources.ts). */
export const APT_SOURCES_LIST = '/etc/apt/sources.list';
export const APT_SOURCES_DIR = '/etc/apt/sources.list.d';
/** Debian's apt timers and the services they start: lists once or twice a day, then unattended-upgrades. */
export const APT_UNITS = {
  update: 'apt-daily.service',
  updateTimer: 'apt-daily.timer',
  upgrade: 'apt-daily-upgrade.service',
  upgradeTimer: 'apt-daily-upgrade.timer',
} as const;

// The firewall.
/** The ruleset's one table (family inet: IPv4 and IPv6 alike); the relays check for it by name before they start. */
export const FIREWALL_TABLE = 'simplex_pi';

// Tor.
/** The only directory Debian's tor unit may write: every onion service's keys live under it. */
export const TOR_DIR = '/var/lib/tor';
/** Where the Pi's Tor reads client authorization keys for onion services it connects to (its own relays). */
export const ONION_AUTH_DIR = `${TOR_DIR}/onion-auth`;
/** In each onion service's directory: one `<client>.auth` file per client allowed in (Tor's format). */
export const AUTHORIZED_CLIENTS = 'authorized_clients';
export const TOR_SOCKS_PORT = 9050;
export const TOR_CONTROL_PORT = 9051;
export const SOCKS_PROXY = `127.0.0.1:${TOR_SOCKS_PORT}`;
/** Debian's tor@default: the control socket and its cookie (CookieAuthentication), which `status` uses. */
export const TOR_CONTROL_SOCKET = '/run/tor/control';
export const TOR_CONTROL_COOKIE = '/run/tor/control.authcookie';

/** The Pi's own client key for its onion services (device/client-auth.ts): `<name>.auth` in each service's AUTHORIZED_CLIENTS. */
export const SELF_KEY_NAME = 'simplex-pi-relays';
/** The name of client key N (from 1) that the Pi makes on first boot (recipe tor.client_auth.generate); `'N'` for the docs. */
export function generatedClientName(index: number | 'N'): string {
  return `client-${index}`;
}

/** The admin's client key for the SSH onion service (STATE.adminClientKey): `<name>.auth` in its AUTHORIZED_CLIENTS. */
export const ADMIN_KEY_NAME = 'simplex-pi-admin';

/** A client's line in an onion service's authorized_clients/<name>.auth (Tor's format). */
export function authorizedClientLine(publicKey: string): string {
  return `descriptor:x25519:${publicKey}\n`;
}

/** A client's `<service>.auth_private` line (Tor's ClientOnionAuthDir format: the onion without ".onion"). */
export function authPrivateLine(onion: string, privateKey: string): string {
  return `${onion.replace(/\.onion$/, '')}:descriptor:x25519:${privateKey}\n`;
}

// SSH.
/**
 * sshd's own default, which the drop-in does not set: `Port` adds to the ports set elsewhere rather than replacing
 * them, so setting it would make sshd listen on one more port wherever the base or Imager chose another.
 */
export const SSH_PORT = 22;
/** sshd_config's AuthorizedKeysFile names this directory: the recipe's keys, root-owned, one file per user. */
export const SSH_AUTHORIZED_KEYS_DIR = '/etc/ssh/authorized_keys';
/** The recipe's admin logs in with a key only and has no password: sudo must not ask for one. */
export function adminSudoers(user: string): string {
  return `/etc/sudoers.d/simplex-pi-${user}`;
}

/** Local ports a relay may not take: the services that listen on the Pi themselves. */
export const RESERVED_LOCAL_PORTS: Readonly<Record<number, string>> = {
  [SSH_PORT]: 'SSH',
  53: 'DNS',
  [TOR_SOCKS_PORT]: "Tor's SOCKS port",
  [TOR_CONTROL_PORT]: "Tor's control port",
};

// The relays. simplexmq's servers take their directories from environment variables (upstream's
// Simplex.Messaging.Server.Main: SMP_SERVER_CFG_PATH, SMP_SERVER_LOG_PATH; XFTP likewise); each relay has its own.
export type RelayKind = 'smp' | 'xftp';
/** simplexmq's programs, as its release assets and the installed files are named. */
export type BinaryName = 'smp-server' | 'xftp-server';

export interface RelayKindLayout {
  /** The program, installed in BINARY_DIR. */
  binary: BinaryName;
  /** The INI file `init` writes into the configuration directory. */
  iniFile: string;
  cfgEnv: string;
  logEnv: string;
  /**
   * Files in the state directory the server saves at a stop and reads at start (upstream's Server/Main.hs
   * storeMsgsFilePath, storeNtfsFilePath): a power cut during the save leaves a torn last record.
   */
  savedFiles: readonly string[];
  /**
   * The Prometheus text file the server rewrites every `[STORE_LOG] prometheus_interval` seconds in the state
   * directory (upstream's Server/Main.hs and FileTransfer/Server/Main.hs prometheusMetricsFile): the relay's counts,
   * which `status` shows (device/relay-metrics.ts). Nothing a backup needs.
   */
  metricsFile: string;
}

export const RELAY_KINDS: Readonly<Record<RelayKind, RelayKindLayout>> = {
  smp: {
    binary: 'smp-server',
    iniFile: 'smp-server.ini',
    cfgEnv: 'SMP_SERVER_CFG_PATH',
    logEnv: 'SMP_SERVER_LOG_PATH',
    savedFiles: ['smp-server-messages.log', 'smp-server-ntfs.log'],
    metricsFile: 'smp-server-metrics.txt',
  },
  xftp: {
    binary: 'xftp-server',
    iniFile: 'file-server.ini',
    cfgEnv: 'XFTP_SERVER_CFG_PATH',
    logEnv: 'XFTP_SERVER_LOG_PATH',
    savedFiles: [],
    metricsFile: 'xftp-server-metrics.txt',
  },
};

/** Each relay's directories, named after its onion service: configuration (keys, INI) and state (stores, logs). */
export function relayDirs(service: string): { cfgPath: string; logPath: string } {
  return { cfgPath: `/etc/opt/${service}`, logPath: `/var/opt/${service}` };
}

/** SMP relay N (from 1): its onion service and directories are simplex-smpN, its unit simplex-smp@N.service. */
export function smpService(index: number): string {
  return `simplex-smp${index}`;
}
export function smpUnit(index: number): string {
  return `simplex-smp@${index}.service`;
}

/** The local ports of `count` SMP relays: one after another from the recipe's smp.local_port_base. */
export function smpLocalPorts(base: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => base + i);
}

export const XFTP_SERVICE = 'simplex-xftp';
export const XFTP_UNIT = 'simplex-xftp.service';
/** Where the XFTP relay keeps files in transit; xftp-server creates neither it nor its parent. */
export const XFTP_FILES_DIR = '/srv/simplex-xftp/files';
export const SSH_SERVICE = 'simplex-ssh';

// The USB export.
/** The stick's folder: `simplex-pi-<the host name the Pi has>`. */
export function stickFolder(host: string): string {
  return `simplex-pi-${host}`;
}
/** The export unit's RuntimeDirectory= (under /run, on tmpfs): where files are laid out before mtools copies them. */
export const EXPORT_RUNTIME_DIR = 'simplex-pi-export';
/** In the stick's folder: the admin's material (the SSH address and its client key), apart from the members'. */
export const ADMIN_FOLDER = 'admin';
/** In the stick's folder: what every export writes, secret or not (services, Tor, storage, last export). */
export const HEALTH_FILE = 'health.txt';
/** In the stick's folder: the backups (`simplex-pi backup`, backup.on_stick), each one encrypted file. */
export const BACKUP_FOLDER = 'backups';
/** In the stick's folder, with export.encrypt_to: every secret file in one tar archive, encrypted with age. */
export const ENCRYPTED_ARCHIVE = 'secrets.tar.age';
/**
 * FAT labels of the bases' own partitions (Debian's raspi images, Raspberry Pi OS, cloud-init's NoCloud): never an
 * export label, or the export would write into the Pi's own boot partition (security review L1).
 */
export const RESERVED_FS_LABELS = ['RASPIFIRM', 'RASPIROOT', 'BOOTFS', 'ROOTFS', 'CIDATA', 'BOOT'] as const;
