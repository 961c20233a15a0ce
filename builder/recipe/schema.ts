import { z } from 'zod';
import { INIT_FORMATS } from '../base/init-format.ts';
import { NOT_ZONES, TIMEZONE_NAME } from './timezones.ts';

/**
 * The recipe schema. Field names are snake_case because recipes are YAML written by people; every object is
 * strict so a typo is an error rather than a silently ignored setting.
 */

const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be a sha256: 64 hexadecimal characters' })
  .transform((s) => s.toLowerCase());

const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s]+$/, { error: 'must be an http:// or https:// URL' });

export const RASPIOS_IMAGER_JSON = 'https://downloads.raspberrypi.com/os_list_imagingutility_v4.json';
export const RASPIOS_LITE_ARM64 = 'Raspberry Pi OS Lite (64-bit)';
export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
export const DEBIAN_SECURITY_MIRROR = 'http://deb.debian.org/debian-security';
export const SIMPLEXMQ_VERSION = '6.5.2';
/** Ubuntu 22.04 builds link against glibc 2.35, which Debian bookworm (2.36) and trixie can run; 24.04 builds cannot run on bookworm. */
export const SIMPLEXMQ_ASSET_SUFFIX = 'ubuntu-22_04-aarch64';
export const SIMPLEXMQ_RELEASE_BASE = 'https://github.com/simplex-chat/simplexmq/releases/download/v{version}';
export const SIMPLEXMQ_RELEASE_API = 'https://api.github.com/repos/simplex-chat/simplexmq/releases/tags/v{version}';
/**
 * The first simplexmq release with aarch64 assets: upstream's build workflow (.github/workflows/build.yml) builds
 * them from tag v6.5.0-beta.1 on; 6.4.x and older have x86-64 assets only.
 */
export const SIMPLEXMQ_FIRST_AARCH64 = '6.5.0';

/** Whether a simplexmq version (X.Y.Z, X.Y.Z.n or X.Y.Z-beta.n) comes with aarch64 release assets. */
export function hasAarch64Assets(version: string): boolean {
  const [major, minor] = version.split(/[.-]/).map(Number) as [number, number];
  const [firstMajor, firstMinor] = SIMPLEXMQ_FIRST_AARCH64.split('.').map(Number) as [number, number];
  return major > firstMajor || (major === firstMajor && minor >= firstMinor);
}
/**
 * Raspberry Pi models with a 64-bit CPU: the simplexmq binaries are aarch64 programs. `pi3` includes the Compute
 * Module 3, `pi4` the 400 and Compute Module 4, `pi5` the 500 and Compute Module 5 (Raspberry Pi Imager groups them so).
 */
export const PI_MODELS = ['zero2w', 'pi3', 'pi4', 'pi5'] as const;

/**
 * Raspberry Pi Imager's customisation format to publish for the image (`init_format` in its repository JSON).
 * Normally not set: it is detected from the image when it is built (cloud-init reading the boot partition:
 * cloudinit-rpi; Raspberry Pi OS's hook for Imager's systemd firstrun.sh: systemd; neither: none) and
 * cross-checked with Imager's list. Setting it overrides both (builder/base/init-format.ts).
 */
const initFormat = () =>
  z.enum(INIT_FORMATS, { error: `must be one of ${INIT_FORMATS.filter(Boolean).join(', ')} (Raspberry Pi Imager's init_format)` }).optional();

const raspiosBase = z.strictObject({
  provider: z.literal('raspios'),
  /** `latest` resolves through Raspberry Pi Imager's repository JSON; a pinned image gives url + sha256. */
  release: z.literal('latest').default('latest'),
  imager_json: httpUrl.default(RASPIOS_IMAGER_JSON),
  os_name: z.string().min(1).default(RASPIOS_LITE_ARM64),
  url: httpUrl.optional(),
  sha256: sha256Hex.optional(),
  release_date: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'must be a date like 2025-10-01' })
    .optional(),
  init_format: initFormat(),
});

const debianBase = z.strictObject({
  provider: z.literal('debian'),
  suite: z.enum(['bookworm', 'trixie'], { error: 'must be bookworm or trixie' }).default('bookworm'),
  mirror: httpUrl.default(DEBIAN_MIRROR),
  security_mirror: httpUrl.default(DEBIAN_SECURITY_MIRROR),
});

const fileBase = z.strictObject({
  provider: z.literal('file'),
  path: z.string().min(1, { error: 'must name a .img or .img.xz file' }),
  sha256: sha256Hex,
  init_format: initFormat(),
});

export const baseSchema = z.discriminatedUnion('provider', [raspiosBase, debianBase, fileBase], {
  error: 'base.provider must be raspios, debian or file',
});

const binarySource = z
  .strictObject({
    url: httpUrl.optional(),
    path: z.string().min(1).optional(),
    /** A pinned sha256, or `release-notes` to read it from the `SHA2-256(<asset>)= <hex>` lines of the release. */
    sha256: z.union([sha256Hex, z.literal('release-notes')], {
      error: 'must be a sha256 (64 hexadecimal characters) or release-notes',
    }),
  })
  .refine((s) => !(s.url && s.path), { error: 'give either url or path, not both' })
  .refine((s) => !(s.path && s.sha256 === 'release-notes'), {
    error: 'a local path needs its sha256; release-notes only applies to downloads',
  });

/** A whole number in a range, with one message for every way to get it wrong. */
function int(min: number, max: number) {
  const message = `must be a whole number from ${min} to ${max}`;
  return z.number({ error: message }).int({ error: message }).min(min, { error: message }).max(max, { error: message });
}

const bool = () => z.boolean({ error: 'must be true or false' });
const port = () => int(1, 65535);
/** Local ports the relays listen on: unprivileged, so the relay units need no capability. */
const localPort = () => int(1024, 65535);

/** Base32 of a 32-byte x25519 key, as Tor writes it: 52 characters, no padding (facts §7). */
const x25519Base32 = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.string().regex(/^[A-Z2-7]{52}$/, { error: 'must be a 52-character base32 x25519 public key (as in a Tor .auth file)' }));

const sshPublicKey = z
  .string()
  .trim()
  .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{40,}={0,3}( [^\n]*)?$/, {
    error: 'must be one OpenSSH public key line, e.g. "ssh-ed25519 AAAA… you@laptop" (the .pub file, never the private key)',
  });

export const SMP_LOCAL_PORT_BASE = 5301;
export const XFTP_LOCAL_PORT = 5443;
/** Ports taken by other services on the Pi: Tor's SOCKS and control ports, SSH, DNS. */
export const RESERVED_LOCAL_PORTS: Record<number, string> = { 22: 'SSH', 53: 'DNS', 9050: "Tor's SOCKS port", 9051: "Tor's control port" };

/** The most SMP relays one Pi runs; `recipes new` scales up to it too (presets.ts). */
export const MAX_SMP_INSTANCES = 32;

const smpSchema = z.strictObject({
  instances: int(1, MAX_SMP_INSTANCES).default(1),
  /** generate: each relay gets a random password, needed to create queues on it; none: anyone who knows the address may. */
  password: z.enum(['generate', 'none'], { error: 'must be generate or none' }).default('generate'),
  local_port_base: localPort().default(SMP_LOCAL_PORT_BASE),
  onion_port: port().default(5223),
  /**
   * Only `always`: with `onion`, simplexmq's proxy connects to relays that have a public address directly over the
   * clearnet, from the Pi's own IP address (facts §3).
   */
  socks_mode: z
    .literal('always', {
      error: 'must be always: with onion, the relays would connect to public SimpleX relays over the clearnet from the Pi\'s own address',
    })
    .default('always'),
  message_expiry_days: int(1, 365).default(21),
});

const xftpSchema = z.strictObject({
  enabled: bool().default(true),
  /** simplexmq's own format: a number and gb, mb or kb, lower-case. */
  quota: z
    .string({ error: 'must be a size like 10gb, 500mb' })
    .regex(/^[1-9]\d*(gb|mb|kb)$/, { error: 'must be a whole number followed by gb, mb or kb in lower case, e.g. 10gb (simplexmq rejects other forms)' })
    .default('10gb'),
  file_expiry_hours: int(1, 8760).default(48),
  /**
   * generate: the relay gets a random upload password ([AUTH] create_password), carried in its xftp:// address,
   * so only the group's apps can store files on the card. none: anyone who has the address may. The address
   * reaches far beyond the group: every file description a member sends names the relay (without the password),
   * so without one anyone ever sent a file through it could fill the card up to the quota.
   */
  password: z.enum(['generate', 'none'], { error: 'must be generate or none' }).default('generate'),
  onion_port: port().default(443),
  local_port: localPort().default(XFTP_LOCAL_PORT),
});

const torSchema = z.strictObject({
  /** HiddenServicePoWDefensesEnabled: clients solve a puzzle when the relay is flooded with introductions. */
  pow_defense: bool().default(true),
  /** HiddenServiceMaxStreams per rendezvous circuit (0 = unlimited); the circuit is closed when exceeded. */
  max_streams: int(0, 65535).default(64),
  vanguards_lite: bool().default(true),
  client_auth: z
    .strictObject({
      /** Public keys of clients allowed to reach the onion services; with any key, nobody else can. */
      keys: z
        .array(
          z.strictObject({
            name: z.string().regex(/^[a-z0-9_-]{1,32}$/, { error: 'must be 1–32 lower-case letters, digits, - or _' }),
            public_key: x25519Base32,
          }),
        )
        .default([]),
      /** Client keys made on the Pi at first boot; their private halves go to the USB stick. */
      generate: int(0, 32).default(0),
    })
    .prefault({}),
});

const adminSchema = z.strictObject({
  /** The login user for SSH; created in the image, locked password, keys only. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,30}$/, { error: 'must be a Linux user name: lower-case letters, digits, - or _, starting with a letter' })
    .refine((u) => !['root', 'simplex', 'debian-tor'].includes(u), { error: 'must not be root or a service account' })
    .default('admin'),
  ssh: z
    .strictObject({
      /** SSH reachable only as an onion service (sshd listens on 127.0.0.1). */
      over_tor: bool().default(false),
      /** SSH also reachable from the local network. */
      lan: bool().default(false),
      authorized_keys: z.array(sshPublicKey).default([]),
    })
    .prefault({}),
});

const networkSchema = z.strictObject({
  /** tor-only: the Pi may open connections only for Tor, DHCP, DNS for time sync, and NTP. open: anything. */
  outbound: z.enum(['tor-only', 'open'], { error: 'must be tor-only or open' }).default('tor-only'),
  allow_ping: bool().default(false),
});

const exportSchema = z.strictObject({
  /** The FAT label of the USB stick that receives the addresses; a stick with another label is never written. */
  usb_label: z
    .string()
    .regex(/^[A-Z0-9_-]{1,11}$/, { error: 'must be 1–11 upper-case letters, digits, - or _ (a FAT volume label)' })
    .default('SIMPLEX'),
  formats: z
    .array(z.enum(['txt', 'json', 'qr'], { error: 'must be txt, json or qr' }))
    .min(1, { error: 'must name at least one format' })
    .default(['txt', 'json', 'qr']),
});

export const recipeSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, {
        error: 'must be 1–40 lower-case letters, digits or dashes, starting with a letter or digit (it names the output files)',
      }),
    description: z.string().default(''),
    /** The Raspberry Pi models the image is meant for; Raspberry Pi Imager offers it only for these. */
    models: z
      .array(z.enum(PI_MODELS, { error: `must be one of ${PI_MODELS.join(', ')} (64-bit models only: the relays are aarch64 programs)` }))
      .min(1, { error: 'must name at least one model' })
      .default([...PI_MODELS]),
    base: baseSchema.default({
      provider: 'raspios',
      release: 'latest',
      imager_json: RASPIOS_IMAGER_JSON,
      os_name: RASPIOS_LITE_ARM64,
    }),
    hostname: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { error: 'must be a host name: lower-case letters, digits and dashes, at most 63' })
      .default('simplex-pi'),
    /**
     * An IANA time zone name. Only its form is checked here: the build checks the zone is in the image's own
     * tzdata (builder/recipe/timezones.ts says why not Node's list); old names such as Asia/Calcutta are mapped.
     */
    timezone: z
      .string()
      .regex(TIMEZONE_NAME, { error: 'must be a time zone name like Europe/Berlin, Asia/Kolkata or UTC' })
      .refine((tz) => !NOT_ZONES.includes(tz), { error: 'must be a time zone name like Europe/Berlin, Asia/Kolkata or UTC' })
      .default('UTC'),
    smp: smpSchema.prefault({}),
    xftp: xftpSchema.prefault({}),
    tor: torSchema.prefault({}),
    admin: adminSchema.prefault({}),
    network: networkSchema.prefault({}),
    export: exportSchema.prefault({}),
    /** Extra directories copied into the image's root as they are (after the rendered configuration). */
    overlays: z.array(z.string().min(1)).default([]),
    simplexmq: z
      .strictObject({
        version: z
          .string()
          .regex(/^v?\d+\.\d+\.\d+(\.\d+)?(-[0-9A-Za-z.]+)?$/, { error: 'must be a simplexmq version like 6.5.2' })
          .transform((v) => v.replace(/^v/, ''))
          .default(SIMPLEXMQ_VERSION),
        release_notes_url: httpUrl.default(SIMPLEXMQ_RELEASE_API),
        smp_server: binarySource.optional(),
        xftp_server: binarySource.optional(),
        /**
         * MemoryDenyWriteExecute for the relay units. Off by default: whether the GHC-built binaries tolerate it is
         * not verified, and a relay that cannot start is worse than one sandboxed slightly less.
         */
        memory_deny_write_execute: bool().default(false),
      })
      .prefault({}),
  })
  .superRefine((recipe, ctx) => {
    const taken = new Map<number, string>(Object.entries(RESERVED_LOCAL_PORTS).map(([p, what]) => [Number(p), what]));
    const claim = (portNumber: number, what: string, path: PropertyKey[]) => {
      const holder = taken.get(portNumber);
      if (holder) ctx.addIssue({ code: 'custom', path, message: `port ${portNumber} for ${what} collides with ${holder}; choose another` });
      else taken.set(portNumber, what);
    };
    const last = recipe.smp.local_port_base + recipe.smp.instances - 1;
    if (last > 65535) ctx.addIssue({ code: 'custom', path: ['smp', 'local_port_base'], message: `${recipe.smp.instances} instances from port ${recipe.smp.local_port_base} would go past 65535` });
    for (let i = 0; i < recipe.smp.instances && recipe.smp.local_port_base + i <= 65535; i++) {
      claim(recipe.smp.local_port_base + i, `SMP relay ${i + 1}`, ['smp', 'local_port_base']);
    }
    if (recipe.xftp.enabled) claim(recipe.xftp.local_port, 'the XFTP relay', ['xftp', 'local_port']);
    const ssh = recipe.admin.ssh;
    // Raspberry Pi OS gets a user and key from Imager's customisation; so does a local image declared to have it.
    const base = recipe.base;
    const customisable = base.provider === 'raspios' || (base.provider === 'file' && base.init_format !== undefined && base.init_format !== '' && base.init_format !== 'none');
    const noCustomisation = base.provider === 'file' ? 'this base has no Raspberry Pi Imager customisation declared (base.init_format)' : 'this base has no Raspberry Pi Imager customisation';
    if ((ssh.over_tor || ssh.lan) && ssh.authorized_keys.length === 0 && !customisable) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'ssh', 'authorized_keys'],
        message: `SSH accepts keys only, and ${noCustomisation} to add one: list at least one public key`,
      });
    }
    const simplexmq = recipe.simplexmq;
    if (!hasAarch64Assets(simplexmq.version)) {
      for (const [field, source] of [['smp_server', simplexmq.smp_server], ['xftp_server', simplexmq.xftp_server]] as const) {
        if (field === 'xftp_server' && !recipe.xftp.enabled) continue;
        if (source?.path !== undefined || source?.url !== undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: ['simplexmq', 'version'],
          message:
            `simplexmq ${simplexmq.version} has no aarch64 release assets (upstream builds them from ${SIMPLEXMQ_FIRST_AARCH64} on), so there is no ${field} to download for a Raspberry Pi: ` +
            `choose ${SIMPLEXMQ_FIRST_AARCH64} or later (the default is ${SIMPLEXMQ_VERSION}), or give simplexmq.${field} as the url or path and sha256 of your own aarch64 build`,
        });
        break;
      }
    }
    if (!ssh.over_tor && !ssh.lan && !customisable) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'ssh'],
        message: 'with SSH off (over_tor and lan both false) nobody could ever log in to update or repair this Pi: set over_tor: true and give authorized_keys',
      });
    }
  });

export type Recipe = z.output<typeof recipeSchema>;
export type BaseSpec = z.output<typeof baseSchema>;
export type BinarySourceSpec = z.output<typeof binarySource>;
export type PiModel = (typeof PI_MODELS)[number];
