import type { BaseSpec, BinarySourceSpec, PiModel, Recipe } from '../recipe/schema.ts';
import { SIMPLEXMQ_ASSET_SUFFIX, SIMPLEXMQ_RELEASE_BASE } from '../recipe/schema.ts';
import { canonicalTimezone } from '../recipe/timezones.ts';

/**
 * The BuildPlan: everything the pipeline, the rendered configuration and the device program need to know,
 * derived from a recipe without any I/O. It is serialised to /etc/simplex-pi/plan.json in the image, where the
 * first-boot program reads it.
 */

export const PLAN_SCHEMA_VERSION = 1;

export type BinaryName = 'smp-server' | 'xftp-server';

export interface BinaryInput {
  name: BinaryName;
  /** The release asset name, which is also what the `SHA2-256(<asset>)=` line in the release notes names. */
  asset: string;
  url?: string;
  path?: string;
  /** A pinned sha256, or `release-notes` to read it from the release. */
  sha256: string;
  installPath: string;
}

/** One INI setting the first-boot program applies after `init` (simplexmq's INI: `key = value` lines per section). */
export interface IniSetting {
  section: string;
  key: string;
  value: string;
}

/** A Tor onion service: its directory under /var/lib/tor (the only place Debian's tor unit may write) and ports. */
export interface OnionService {
  name: string;
  dir: string;
  /** Onion (virtual) port -> local port on 127.0.0.1. */
  virtualPort: number;
  localPort: number;
}

export interface SmpInstance {
  index: number;
  /** Instance name, e.g. smp1: unit simplex-smp@1, directories simplex-smp1. */
  name: string;
  unit: string;
  localPort: number;
  onion: OnionService;
  cfgPath: string;
  logPath: string;
  /** `smp-server` arguments for init; the device adds `-n <onion address>` once the onion key exists. */
  initArgs: string[];
  ini: IniSetting[];
}

export interface XftpServer {
  unit: string;
  localPort: number;
  onion: OnionService;
  cfgPath: string;
  logPath: string;
  filesPath: string;
  quota: string;
  /** generate: the first boot sets a random [AUTH] create_password after init (xftp-server init has no flag for it). */
  password: 'generate' | 'none';
  /** `xftp-server` arguments for init; the device adds `-n <onion address>`. */
  initArgs: string[];
  ini: IniSetting[];
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
    overTor: boolean;
    lan: boolean;
    user: string;
    authorizedKeys: string[];
    onion: OnionService | null;
  };
  network: { outbound: 'tor-only' | 'open'; allowPing: boolean };
  export: { usbLabel: string; formats: Array<'txt' | 'json' | 'qr'> };
  simplexmq: { version: string; releaseNotesUrl: string; binaries: BinaryInput[]; memoryDenyWriteExecute: boolean };
  /** Units the configure stage enables. */
  units: string[];
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

export const BINARY_DIR = '/usr/local/bin';
export const TOR_DIR = '/var/lib/tor';
/** Where the Pi's Tor reads client authorization keys for onion services it connects to (its own relays). */
export const ONION_AUTH_DIR = `${TOR_DIR}/onion-auth`;
export const TOR_SOCKS_PORT = 9050;
export const SOCKS_PROXY = `127.0.0.1:${TOR_SOCKS_PORT}`;
export const RELAY_USER = 'simplex';

function expand(template: string, version: string): string {
  return template.replaceAll('{version}', version);
}

function binaryInput(name: BinaryName, spec: BinarySourceSpec | undefined, version: string): BinaryInput {
  const asset = `${name}-${SIMPLEXMQ_ASSET_SUFFIX}`;
  const source = spec ?? { sha256: 'release-notes' };
  const input: BinaryInput = { name, asset, sha256: source.sha256, installPath: `${BINARY_DIR}/${name}` };
  if (source.path) input.path = source.path;
  else input.url = expand(source.url ?? `${SIMPLEXMQ_RELEASE_BASE}/${asset}`, version);
  return input;
}

function onion(name: string, virtualPort: number, localPort: number): OnionService {
  return { name, dir: `${TOR_DIR}/${name}`, virtualPort, localPort };
}

/**
 * What the first-boot program sets in smp-server.ini after `init`: a single local port (init writes 5223,443),
 * outbound private routing only through Tor (socks_mode always, facts §3: onion would use the clearnet for relays
 * with public addresses), and onion hosts preferred.
 */
function smpIni(localPort: number, expiryDays: number): IniSetting[] {
  return [
    { section: 'TRANSPORT', key: 'port', value: String(localPort) },
    { section: 'TRANSPORT', key: 'websockets', value: 'off' },
    { section: 'PROXY', key: 'socks_proxy', value: SOCKS_PROXY },
    { section: 'PROXY', key: 'socks_mode', value: 'always' },
    { section: 'PROXY', key: 'host_mode', value: 'onion' },
    { section: 'STORE_LOG', key: 'expire_messages_days', value: String(expiryDays) },
  ];
}

export interface PlanOverrides {
  base?: BaseSpec;
}

export function resolvePlan(recipe: Recipe, overrides: PlanOverrides = {}): BuildPlan {
  const version = recipe.simplexmq.version;
  const instances: SmpInstance[] = Array.from({ length: recipe.smp.instances }, (_, i) => {
    const index = i + 1;
    const localPort = recipe.smp.local_port_base + i;
    return {
      index,
      name: `smp${index}`,
      unit: `simplex-smp@${index}.service`,
      localPort,
      onion: onion(`simplex-smp${index}`, recipe.smp.onion_port, localPort),
      cfgPath: `/etc/opt/simplex-smp${index}`,
      logPath: `/var/opt/simplex-smp${index}`,
      // -y: no questions; --disable-web: no HTTPS site, which would need a certificate and is of no use over Tor.
      initArgs: ['init', '-y', '--disable-web', ...(recipe.smp.password === 'none' ? ['--no-password'] : [])],
      ini: smpIni(localPort, recipe.smp.message_expiry_days),
    };
  });
  const xftp: XftpServer | null = recipe.xftp.enabled
    ? {
        unit: 'simplex-xftp.service',
        localPort: recipe.xftp.local_port,
        onion: onion('simplex-xftp', recipe.xftp.onion_port, recipe.xftp.local_port),
        cfgPath: '/etc/opt/simplex-xftp',
        logPath: '/var/opt/simplex-xftp',
        filesPath: '/srv/simplex-xftp/files',
        quota: recipe.xftp.quota,
        password: recipe.xftp.password,
        initArgs: ['init', '-p', '/srv/simplex-xftp/files', '-q', recipe.xftp.quota],
        ini: [
          { section: 'TRANSPORT', key: 'port', value: String(recipe.xftp.local_port) },
          { section: 'STORE_LOG', key: 'expire_files_hours', value: String(recipe.xftp.file_expiry_hours) },
        ],
      }
    : null;
  const sshEnabled = recipe.admin.ssh.over_tor || recipe.admin.ssh.lan;
  const sshOnion = recipe.admin.ssh.over_tor ? onion('simplex-ssh', 22, 22) : null;
  const binaries = [binaryInput('smp-server', recipe.simplexmq.smp_server, version)];
  if (xftp) binaries.push(binaryInput('xftp-server', recipe.simplexmq.xftp_server, version));
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
    ssh: { enabled: sshEnabled, overTor: recipe.admin.ssh.over_tor, lan: recipe.admin.ssh.lan, user: recipe.admin.user, authorizedKeys: recipe.admin.ssh.authorized_keys, onion: sshOnion },
    network: { outbound: recipe.network.outbound, allowPing: recipe.network.allow_ping },
    export: { usbLabel: recipe.export.usb_label, formats: recipe.export.formats },
    simplexmq: {
      version,
      releaseNotesUrl: expand(recipe.simplexmq.release_notes_url, version),
      binaries,
      memoryDenyWriteExecute: recipe.simplexmq.memory_deny_write_execute,
    },
    units: ['simplex-pi-firstboot.service', ...instances.map((i) => i.unit), ...(xftp ? [xftp.unit] : []), 'nftables.service', ...(sshEnabled ? ['ssh.service'] : [])],
    overlays: recipe.overlays,
    packages: [...RUNTIME_PACKAGES, ...(sshEnabled ? SSH_PACKAGES : [])],
  };
}
