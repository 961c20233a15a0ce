import type { BaseSpec, BinarySourceSpec, PiModel, Recipe } from '../recipe/schema.ts';
import { SIMPLEXMQ_ASSET_SUFFIX, SIMPLEXMQ_RELEASE_BASE } from '../recipe/schema.ts';
import { canonicalTimezone } from '../recipe/timezones.ts';
import { parsePublicKey, publicKeyBase64 } from '../signing/minisign.ts';
import { PROJECT_PUBLIC_KEY } from '../signing/project-key.ts';
import {
  BINARY_DIR,
  ONION_AUTH_DIR,
  PLAN_SCHEMA_VERSION,
  RELAY_KINDS,
  RELAY_USER,
  type BinaryName,
  type RelayKind,
  SOCKS_PROXY,
  SSH_PORT,
  SSH_SERVICE,
  TOR_DIR,
  TOR_SOCKS_PORT,
  UNITS,
  XFTP_FILES_DIR,
  XFTP_SERVICE,
  XFTP_UNIT,
  relayDirs,
  smpLocalPorts,
  smpService,
  smpUnit,
} from './layout.ts';

/**
 * The BuildPlan: everything the pipeline, the rendered configuration and the device program need to know,
 * derived from a recipe without any I/O. It is serialised to PLAN_PATH (plan/layout.ts) in the image, where the
 * first-boot program reads it.
 */

export { PLAN_SCHEMA_VERSION };

export type { BinaryName };

export interface BinaryInput {
  name: BinaryName;
  /** The release asset name, which is also what the `SHA2-256(<asset>)=` line in the release notes names. */
  asset: string;
  url?: string;
  path?: string;
  /** A pinned sha256, `lock` to take it from simplexmq.lock.json (stages/simplexmq-lock.ts), or `release-notes` to read it from the release. */
  sha256: string;
  installPath: string;
}

/** One INI setting the first-boot program applies after `init` (simplexmq's INI: `key = value` lines per section). */
export interface IniSetting {
  section: string;
  key: string;
  value: string;
}

/** A Tor onion service: its directory under TOR_DIR (the only place Debian's tor unit may write) and ports. */
export interface OnionService {
  name: string;
  dir: string;
  /** Onion (virtual) port -> local port on 127.0.0.1. */
  virtualPort: number;
  localPort: number;
}

/**
 * One relay, as its unit, the first-boot program and `status` need it: every path and name rendered from the
 * layout (plan/layout.ts), so the unit template and the device read them instead of deriving them again.
 */
export interface RelayServer {
  kind: RelayKind;
  /** The name in the server list and on the stick: smp1, smp2, …, xftp. */
  name: string;
  unit: string;
  /** The unit's Description=. */
  description: string;
  localPort: number;
  onion: OnionService;
  /** The installed program. */
  binary: string;
  /** The INI file name in cfgPath. */
  iniFile: string;
  /** Keys, certificates and the INI (simplexmq's configuration directory). */
  cfgPath: string;
  /** Stores and logs (simplexmq's log directory): what the relay may write. */
  logPath: string;
  /** simplexmq's own variables that point the server at its directories. */
  env: Record<string, string>;
  /** Files the server saves at a stop and reads at start (absolute), which a power cut can leave torn. */
  savedFiles: string[];
  /** Everything the relay writes (its unit's ReadWritePaths). */
  writablePaths: string[];
  /** Arguments for init; the device adds `-n <onion address>` once the onion key exists. */
  initArgs: string[];
  /** What the device sets in the INI after init. */
  ini: IniSetting[];
}

export interface SmpInstance extends RelayServer {
  kind: 'smp';
  /** From 1: unit simplex-smp@N, directories simplex-smpN. */
  index: number;
}

export interface XftpServer extends RelayServer {
  kind: 'xftp';
  filesPath: string;
  quota: string;
  /** generate: the first boot sets a random [AUTH] create_password after init (xftp-server init has no flag for it). */
  password: 'generate' | 'none';
}

/** A unit `simplex-pi status` reports, with the local port it must listen on. */
export interface ReportedUnit {
  unit: string;
  port?: number;
}

export interface BuildPlan {
  schemaVersion: number;
  name: string;
  description: string;
  /** The Raspberry Pi models the image is meant for (Raspberry Pi Imager's device tags are made from them). */
  models: PiModel[];
  base: BaseSpec;
  hostname: string;
  /** The recipe's time zone under its current IANA name (an old name such as Asia/Calcutta is mapped). */
  timezone: string;
  /** The unprivileged user every relay runs as. */
  relayUser: string;
  smp: {
    instances: SmpInstance[];
    password: 'generate' | 'none';
    onionPort: number;
  };
  xftp: XftpServer | null;
  tor: {
    socksPort: number;
    powDefense: boolean;
    maxStreams: number;
    vanguardsLite: boolean;
    clientAuth: { keys: Array<{ name: string; publicKey: string }>; generate: number };
    /**
     * With client authorization on: Tor's ClientOnionAuthDir, where first boot puts the Pi's own key for each of
     * its SMP relays, so a relay acting as another's proxy (private message routing) can still reach it.
     */
    clientOnionAuthDir: string | null;
    services: OnionService[];
  };
  ssh: {
    enabled: boolean;
    port: number;
    overTor: boolean;
    lan: boolean;
    user: string;
    authorizedKeys: string[];
    onion: OnionService | null;
  };
  network: { outbound: 'tor-only' | 'open'; allowPing: boolean };
  /** The USB export (device/export.ts): the stick's label, what to write, and the age recipient secrets are encrypted to. */
  export: { usbLabel: string; formats: Array<'txt' | 'json' | 'qr'>; encryptTo: string | null };
  /** Backups (device/backup.ts): the age recipient they are encrypted to, and whether a labelled stick gets one unasked. */
  backup: { recipient: string | null; onStick: boolean };
  /** The recipe's SOURCE_DATE_EPOCH, or null for the base's date (image/source-date-epoch.ts chooses). */
  sourceDateEpoch: number | null;
  /** The onion watchdog (device/watchdog.ts): how often its timer runs. */
  watchdog: { intervalSeconds: number };
  /**
   * Relay updates (device/update.ts): the minisign key a bundle must be signed with (the base64 line; null: the
   * recipe took the project's key and the project has published none yet), and the URL the Pi checks daily (null: never).
   */
  update: { publicKey: string | null; checkUrl: string | null };
  simplexmq: { version: string; releaseNotesUrl: string; binaries: BinaryInput[]; memoryDenyWriteExecute: boolean };
  /** Units the configure stage enables. */
  units: string[];
  /** Units `simplex-pi status` reports, in order. */
  reportedUnits: ReportedUnit[];
  /** Extra directories the recipe copies into the image (host paths). */
  overlays: string[];
  /** Debian packages the `packages` stage installs from the base's own apt sources. */
  packages: string[];
}

/**
 * Tor, the firewall, Node for the first-boot program, mtools for the USB export (the stick is never mounted),
 * what the GHC-built simplexmq binaries link against (openssl is also called by `init`; libgmp, libffi and
 * libnuma are the Haskell runtime's libraries), and tzdata, the time zone database the recipe's `timezone` names
 * a file of (Raspberry Pi OS has it; the Debian base, bootstrapped with only what apt needs, does not).
 */
export const RUNTIME_PACKAGES = ['tor', 'nftables', 'nodejs', 'openssl', 'libgmp10', 'libffi8', 'libnuma1', 'zlib1g', 'mtools', 'tzdata'];
export const SSH_PACKAGES = ['openssh-server', 'sudo'];
/**
 * Security updates (README: Security updates): unattended-upgrades installs Debian's security updates every day,
 * needrestart restarts the services whose libraries they replaced. Neither is in Raspberry Pi OS or the Debian base.
 */
export const UPDATE_PACKAGES = ['unattended-upgrades', 'needrestart'];
/** With outbound tor-only: apt's tor+http and tor+https schemes (image/apt-sources.ts), apt's only way out then. */
export const TOR_APT_PACKAGES = ['apt-transport-tor'];

function expand(template: string, version: string): string {
  return template.replaceAll('{version}', version);
}

function binaryInput(name: BinaryName, spec: BinarySourceSpec | undefined, version: string): BinaryInput {
  const asset = `${name}-${SIMPLEXMQ_ASSET_SUFFIX}`;
  const source = spec ?? { sha256: 'lock' };
  const input: BinaryInput = { name, asset, sha256: source.sha256, installPath: `${BINARY_DIR}/${name}` };
  if (source.path) input.path = source.path;
  else input.url = expand(source.url ?? `${SIMPLEXMQ_RELEASE_BASE}/${asset}`, version);
  return input;
}

function onion(name: string, virtualPort: number, localPort: number): OnionService {
  return { name, dir: `${TOR_DIR}/${name}`, virtualPort, localPort };
}

/**
 * How often each relay rewrites its Prometheus metrics file (RELAY_KINDS metricsFile in its state directory;
 * device/relay-metrics.ts): `status` takes the relay's queue, message and file counts from it. Left unset (init
 * writes it commented out), the relay writes no such file. Each write is the whole file, a few tens of KB for SMP,
 * on the SD card: every 15 minutes is about 3 MB a day a relay; every minute would be 15 times as much wear for
 * counts nobody reads that often.
 */
export const RELAY_METRICS_INTERVAL_SECONDS = 900;
const METRICS_SETTING: IniSetting = { section: 'STORE_LOG', key: 'prometheus_interval', value: String(RELAY_METRICS_INTERVAL_SECONDS) };

/**
 * What the first-boot program sets in the SMP relay's INI after `init`: a single local port (init writes 5223,443),
 * outbound private routing only through Tor (socks_mode always: onion would use the clearnet for relays with public
 * addresses; docs/simplexmq-and-tor.md#socks-mode), and onion hosts preferred.
 */
function smpIni(localPort: number, expiryDays: number): IniSetting[] {
  return [
    { section: 'TRANSPORT', key: 'port', value: String(localPort) },
    { section: 'TRANSPORT', key: 'websockets', value: 'off' },
    { section: 'PROXY', key: 'socks_proxy', value: SOCKS_PROXY },
    { section: 'PROXY', key: 'socks_mode', value: 'always' },
    { section: 'PROXY', key: 'host_mode', value: 'onion' },
    { section: 'STORE_LOG', key: 'expire_messages_days', value: String(expiryDays) },
    METRICS_SETTING,
  ];
}

export interface PlanOverrides {
  base?: BaseSpec;
}

/** The parts of a relay that follow from its kind and its onion service's name alone (plan/layout.ts). */
function relayLayout(kind: RelayKind, service: string) {
  const layout = RELAY_KINDS[kind];
  const { cfgPath, logPath } = relayDirs(service);
  return {
    binary: `${BINARY_DIR}/${layout.binary}`,
    iniFile: layout.iniFile,
    cfgPath,
    logPath,
    env: { [layout.cfgEnv]: cfgPath, [layout.logEnv]: logPath },
    savedFiles: layout.savedFiles.map((name) => `${logPath}/${name}`),
  };
}

export function resolvePlan(recipe: Recipe, overrides: PlanOverrides = {}): BuildPlan {
  const version = recipe.simplexmq.version;
  const ports = smpLocalPorts(recipe.smp.local_port_base, recipe.smp.instances);
  const instances: SmpInstance[] = ports.map((localPort, i) => {
    const index = i + 1;
    const service = smpService(index);
    const paths = relayLayout('smp', service);
    return {
      kind: 'smp',
      index,
      name: `smp${index}`,
      unit: smpUnit(index),
      description: `SimpleX SMP relay ${index} (reachable only through Tor)`,
      localPort,
      onion: onion(service, recipe.smp.onion_port, localPort),
      ...paths,
      writablePaths: [paths.logPath],
      // -y: no questions; --disable-web: no HTTPS site, which would need a certificate and is of no use over Tor.
      initArgs: ['init', '-y', '--disable-web', ...(recipe.smp.password === 'none' ? ['--no-password'] : [])],
      ini: smpIni(localPort, recipe.smp.message_expiry_days),
    };
  });
  const xftpPaths = relayLayout('xftp', XFTP_SERVICE);
  const xftp: XftpServer | null = recipe.xftp.enabled
    ? {
        kind: 'xftp',
        name: 'xftp',
        unit: XFTP_UNIT,
        description: 'SimpleX XFTP file relay (reachable only through Tor)',
        localPort: recipe.xftp.local_port,
        onion: onion(XFTP_SERVICE, recipe.xftp.onion_port, recipe.xftp.local_port),
        ...xftpPaths,
        writablePaths: [xftpPaths.logPath, XFTP_FILES_DIR],
        filesPath: XFTP_FILES_DIR,
        quota: recipe.xftp.quota,
        password: recipe.xftp.password,
        initArgs: ['init', '-p', XFTP_FILES_DIR, '-q', recipe.xftp.quota],
        ini: [
          { section: 'TRANSPORT', key: 'port', value: String(recipe.xftp.local_port) },
          { section: 'STORE_LOG', key: 'expire_files_hours', value: String(recipe.xftp.file_expiry_hours) },
          METRICS_SETTING,
          // Set at init (-q) and again at every first boot: a relay restored from a backup gets this recipe's quota.
          { section: 'FILES', key: 'storage_quota', value: recipe.xftp.quota },
        ],
      }
    : null;
  const sshEnabled = recipe.admin.ssh.over_tor || recipe.admin.ssh.lan;
  const sshOnion = recipe.admin.ssh.over_tor ? onion(SSH_SERVICE, SSH_PORT, SSH_PORT) : null;
  const relays: Array<SmpInstance | XftpServer> = [...instances, ...(xftp ? [xftp] : [])]; // relaysOf (plan/relays.ts), before the plan exists
  const binaries = [binaryInput(RELAY_KINDS.smp.binary, recipe.simplexmq.smp_server, version)];
  if (xftp) binaries.push(binaryInput(RELAY_KINDS.xftp.binary, recipe.simplexmq.xftp_server, version));
  return {
    schemaVersion: PLAN_SCHEMA_VERSION,
    name: recipe.name,
    description: recipe.description,
    models: recipe.models,
    base: overrides.base ?? recipe.base,
    hostname: recipe.hostname,
    timezone: canonicalTimezone(recipe.timezone),
    relayUser: RELAY_USER,
    smp: { instances, password: recipe.smp.password, onionPort: recipe.smp.onion_port },
    xftp,
    tor: {
      socksPort: TOR_SOCKS_PORT,
      powDefense: recipe.tor.pow_defense,
      maxStreams: recipe.tor.max_streams,
      vanguardsLite: recipe.tor.vanguards_lite,
      clientAuth: { keys: recipe.tor.client_auth.keys.map((k) => ({ name: k.name, publicKey: k.public_key })), generate: recipe.tor.client_auth.generate },
      clientOnionAuthDir: recipe.tor.client_auth.keys.length || recipe.tor.client_auth.generate ? ONION_AUTH_DIR : null,
      services: [...instances.map((i) => i.onion), ...(xftp ? [xftp.onion] : []), ...(sshOnion ? [sshOnion] : [])],
    },
    ssh: { enabled: sshEnabled, port: SSH_PORT, overTor: recipe.admin.ssh.over_tor, lan: recipe.admin.ssh.lan, user: recipe.admin.user, authorizedKeys: recipe.admin.ssh.authorized_keys, onion: sshOnion },
    network: { outbound: recipe.network.outbound, allowPing: recipe.network.allow_ping },
    export: { usbLabel: recipe.export.usb_label, formats: recipe.export.formats, encryptTo: recipe.export.encrypt_to },
    backup: { recipient: recipe.backup.recipient, onStick: recipe.backup.on_stick },
    sourceDateEpoch: recipe.source_date_epoch,
    watchdog: { intervalSeconds: recipe.watchdog.interval_seconds },
    update: { publicKey: recipe.update.public_key === 'project' ? PROJECT_PUBLIC_KEY : publicKeyBase64(parsePublicKey(recipe.update.public_key, 'update.public_key')), checkUrl: recipe.update.check_url },
    simplexmq: {
      version,
      releaseNotesUrl: expand(recipe.simplexmq.release_notes_url, version),
      binaries,
      memoryDenyWriteExecute: recipe.simplexmq.memory_deny_write_execute,
    },
    units: [
      UNITS.firstboot,
      UNITS.export,
      UNITS.watchdogTimer,
      ...(recipe.update.check_url ? [UNITS.updateTimer] : []),
      ...relays.map((r) => r.unit),
      UNITS.nftables,
      ...(sshEnabled ? [UNITS.ssh] : []),
    ],
    // Tor is not enabled by us (Debian's package enables it) but is what everything else depends on.
    reportedUnits: [
      { unit: UNITS.tor },
      ...relays.map((r) => ({ unit: r.unit, port: r.localPort })),
      { unit: UNITS.nftables },
      ...(sshEnabled ? [{ unit: UNITS.ssh, port: SSH_PORT }] : []),
    ],
    overlays: recipe.overlays,
    packages: [...RUNTIME_PACKAGES, ...UPDATE_PACKAGES, ...(recipe.network.outbound === 'tor-only' ? TOR_APT_PACKAGES : []), ...(sshEnabled ? SSH_PACKAGES : [])],
  };
}
