import { isAgeRecipient } from './age.ts';
import { parsePublicKey } from '../signing/minisign.ts';
import { z } from 'zod';
import { INIT_FORMATS } from '../base/init-format.ts';
import {
  AUTHORIZED_CLIENTS,
  ENCRYPTED_ARCHIVE,
  RESERVED_FS_LABELS,
  RESERVED_LOCAL_PORTS,
  SELF_KEY_NAME,
  SSH_PORT,
  SSH_SERVICE,
  TOR_CONTROL_PORT,
  TOR_SOCKS_PORT,
  generatedClientName,
  relayDirs,
  smpLocalPorts,
  smpService,
  smpUnit,
} from '../plan/layout.ts';
import { FIRST_PERSON_UID, LAST_PERSON_UID, isSystemAccountName } from './system-accounts.ts';
import { NOT_ZONES, TIMEZONE_NAME } from './timezones.ts';

/**
 * The recipe schema. Field names are snake_case because recipes are YAML written by people; every object is
 * strict so a typo is an error rather than a silently ignored setting. Each field's `.meta({ description })` is
 * its documentation, kept here next to its rules: editors show it (recipes/recipe.schema.json) and recipes/README.md's
 * field tables are made from it (field-docs.ts, `npm run docs`).
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

/** `init_format` of Imager's repository JSON; detecting it and the cross-check are builder/base/init-format.ts. */
const initFormat = () =>
  z
    .enum(INIT_FORMATS, { error: `must be one of ${INIT_FORMATS.filter(Boolean).join(', ')} (Raspberry Pi Imager's init_format)` })
    .optional()
    .meta({ description: "Raspberry Pi Imager's customisation format for this image (`cloudinit-rpi`, `cloudinit`, `systemd`, `rpi-preseed` or `none`). Normally left out: the build detects it from the image and checks it against Imager's list; setting it overrides both." });

const raspiosBase = z.strictObject({
  provider: z.literal('raspios').meta({
    description:
      "Raspberry Pi OS Lite arm64, resolved through Raspberry Pi Imager's repository JSON. The download's sha256 (`image_download_sha256`) " +
      "and the image's (`extract_sha256`) are both checked.",
  }),
  release: z
    .literal('latest')
    .default('latest')
    .meta({ description: "`latest` resolves through Imager's repository JSON; to pin an image, give `url` and `sha256` instead." }),
  imager_json: httpUrl.default(RASPIOS_IMAGER_JSON).meta({ description: "Raspberry Pi Imager's repository JSON (the official one)." }),
  os_name: z.string().min(1).default(RASPIOS_LITE_ARM64).meta({ description: 'The entry of the repository JSON to take.' }),
  url: httpUrl.optional().meta({ description: 'A pinned image instead: its URL, with `sha256`.' }),
  sha256: sha256Hex.optional().meta({ description: 'The sha256 of the file at `url`.' }),
  release_date: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'must be a date like 2025-10-01' })
    .optional()
    .meta({ description: "The pinned image's release date, like 2025-10-01, recorded in the manifest." }),
  init_format: initFormat(),
});

const debianBase = z.strictObject({
  provider: z.literal('debian').meta({
    description:
      "A Debian arm64 image built on the build machine with mmdebstrap: Debian's kernel and `raspi-firmware`, FAT boot partition 1 + ext4 root " +
      'partition 2, DHCP, time sync, root filesystem grown to the card on first boot. Boots on Raspberry Pi 3 and 4 (and in ' +
      '`qemu-system-aarch64 -M virt`); not on a Pi 5 (the bookworm kernel does not support it).',
  }),
  suite: z.enum(['bookworm', 'trixie'], { error: 'must be bookworm or trixie' }).default('bookworm').meta({ description: 'The Debian release: `bookworm` or `trixie`.' }),
  mirror: httpUrl.default(DEBIAN_MIRROR).meta({ description: 'The Debian archive to bootstrap from.' }),
  security_mirror: httpUrl.default(DEBIAN_SECURITY_MIRROR).meta({ description: "The archive of Debian's security updates." }),
});

const fileBase = z.strictObject({
  provider: z.literal('file').meta({ description: 'A local `.img` or `.img.xz` with the same two-partition layout (FAT boot partition 1, ext4 root partition 2).' }),
  path: z.string().min(1, { error: 'must name a .img or .img.xz file' }).meta({ description: 'The image file, relative to the recipe.' }),
  sha256: sha256Hex.meta({ description: 'The sha256 of that file.' }),
  init_format: initFormat(),
});

export const baseSchema = z.discriminatedUnion('provider', [raspiosBase, debianBase, fileBase], {
  error: 'base.provider must be raspios, debian or file',
});

const binarySource = z
  .strictObject({
    url: httpUrl.optional().meta({ description: 'Where to download the binary; `{version}` is replaced by `simplexmq.version`.' }),
    path: z.string().min(1).optional().meta({ description: 'A local binary instead, relative to the recipe.' }),
    sha256: z
      .union([sha256Hex, z.literal('lock'), z.literal('release-notes')], {
        error: 'must be a sha256 (64 hexadecimal characters), lock or release-notes',
      })
      .meta({
        description:
          "The binary's sha256; or `lock` (downloads only) to take it from simplexmq.lock.json, the reviewed lock file that ships with " +
          "simplex-pi (a release not in it falls back to its notes, with a warning; `build --update-lock` adds it); or `release-notes` to " +
          "take it from the `SHA2-256(<asset>)= <hex>` lines simplexmq's release workflow writes into its release notes, which come from " +
          'the same release as the binary. The manifest records which.',
      }),
  })
  .refine((s) => !(s.url && s.path), { error: 'give either url or path, not both' })
  .refine((s) => !(s.path && (s.sha256 === 'release-notes' || s.sha256 === 'lock')), {
    error: 'a local path needs its sha256; lock and release-notes only apply to downloads',
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

/** Base32 of a 32-byte x25519 key, as Tor writes it: 52 characters, no padding (docs/simplexmq-and-tor.md#tor-client-auth). */
const x25519Base32 = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.string().regex(/^[A-Z2-7]{52}$/, { error: 'must be a 52-character base32 x25519 public key (as in a Tor .auth file)' }));

/**
 * Characters a key's comment may not hold: control characters (a carriage return, a tab, escape sequences), line
 * and paragraph separators, and the marks that turn text direction. sshd splits the file at line feeds only, so
 * none of them can add an option, but each can make the file, or a listing of it, show something other than
 * what it holds.
 */
const HIDDEN_IN_TEXT = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

const sshPublicKey = z
  .string()
  .trim()
  .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{40,}={0,3}( [^\n]*)?$/, {
    error: 'must be one OpenSSH public key line, e.g. "ssh-ed25519 AAAA… you@laptop" (the .pub file, never the private key)',
  })
  .refine((line) => !HIDDEN_IN_TEXT.test(line), {
    error: (issue) => {
      const found = HIDDEN_IN_TEXT.exec(String(issue.input))?.[0] ?? '';
      const code = `U+${found.codePointAt(0)?.toString(16).toUpperCase().padStart(4, '0')}`;
      const name = { '\r': 'a carriage return', '\t': 'a tab', '\u2028': 'a line separator', '\u2029': 'a paragraph separator' }[found] ?? (/\p{Cc}/u.test(found) ? 'a control character' : 'a text-direction mark');
      return `has ${name} (${code}) in its comment, the text after the key: it would show something other than what the file holds; keep the comment to plain text, e.g. you@laptop`;
    },
  });

export const SMP_LOCAL_PORT_BASE = 5301;
export const XFTP_LOCAL_PORT = 5443;
/** Ports taken by other services on the Pi: Tor's SOCKS and control ports, SSH, DNS. */
export { RESERVED_LOCAL_PORTS };

/** The most SMP relays one Pi runs; `recipes new` scales up to it too (presets.ts). */
export const MAX_SMP_INSTANCES = 32;

const smpSchema = z.strictObject({
  instances: int(1, MAX_SMP_INSTANCES)
    .default(1)
    .meta({
      description:
        `Number of SMP relays, 1–${MAX_SMP_INSTANCES}. Each has its own onion service, identity, directories (\`${relayDirs(smpService(0)).cfgPath.replace('0', 'N')}\`, ` +
        `\`${relayDirs(smpService(0)).logPath.replace('0', 'N')}\`) and unit (\`${smpUnit(0).replace('0', 'N')}\`).`,
    }),
  password: z
    .enum(['generate', 'none'], { error: 'must be generate or none' })
    .default('generate')
    .meta({
      description:
        '`generate`: each relay gets a random password, part of its address; without it nobody can create queues on the relay. ' +
        '`none`: anyone who learns an address may use the relay.',
    }),
  local_port_base: localPort()
    .default(SMP_LOCAL_PORT_BASE)
    .meta({
      description:
        'The relays listen on 127.0.0.1-reachable ports `local_port_base` … `+instances-1` (1024–65535, never colliding with the XFTP port, ' +
        `SSH, DNS or Tor's ${TOR_SOCKS_PORT}/${TOR_CONTROL_PORT}). The firewall keeps them off the network.`,
    }),
  onion_port: port().default(5223).meta({ description: "The port in the relays' addresses (SimpleX's default for SMP)." }),
  socks_mode: z
    .literal('always', {
      error: 'must be always: with onion, the relays would connect to public SimpleX relays over the clearnet from the Pi\'s own address',
    })
    .default('always')
    .meta({
      description:
        'Only `always` is accepted: every outbound connection of the relays (private message routing) goes through Tor. ' +
        "simplexmq's `onion` would connect to relays with public addresses over the clearnet, from the Pi's own address.",
    }),
  message_expiry_days: int(1, 365).default(21).meta({ description: 'Undelivered messages are deleted after this many days (1–365).' }),
});

const xftpSchema = z.strictObject({
  enabled: bool().default(true).meta({ description: 'Whether to run the XFTP relay.' }),
  quota: z
    .string({ error: 'must be a size like 10gb, 500mb' })
    .regex(/^[1-9]\d*(gb|mb|kb)$/, { error: 'must be a whole number followed by gb, mb or kb in lower case, e.g. 10gb (simplexmq rejects other forms)' })
    .default('10gb')
    .meta({
      description:
        'Storage for files in transit: a whole number and `gb`, `mb` or `kb`, lower case (simplexmq rejects other forms). It shares the SD card ' +
        'with everything else: first boot and `simplex-pi status` warn when the quota, plus 512 MiB kept free for the SMP relays, the journal ' +
        'and Tor, is more than the card has free.',
    }),
  file_expiry_hours: int(1, 8760).default(48).meta({ description: 'Files are deleted after this many hours (1–8760).' }),
  // The address reaches far beyond the group: every file description a member sends names the relay (without the
  // password), so without one anyone ever sent a file through it could fill the card up to the quota.
  password: z
    .enum(['generate', 'none'], { error: 'must be generate or none' })
    .default('generate')
    .meta({
      description:
        '`generate`: first boot gives the relay a random upload password (`[AUTH] create_password`; `xftp-server init` has no option for it), ' +
        'part of its `xftp://` address, so only apps with the address can store files on the card. `none`: anyone who knows the relay may ' +
        "upload, and the relay's onion address travels in every file description a member sends, to people outside the group too.",
    }),
  onion_port: port().default(443).meta({ description: "The port in the XFTP address (SimpleX's default for XFTP)." }),
  local_port: localPort().default(XFTP_LOCAL_PORT).meta({ description: 'The local port.' }),
});

const torSchema = z.strictObject({
  pow_defense: bool()
    .default(true)
    .meta({ description: '`HiddenServicePoWDefensesEnabled`: when flooded, Tor asks clients to solve a small puzzle.' }),
  max_streams: int(0, 65535)
    .default(64)
    .meta({ description: '`HiddenServiceMaxStreams` per circuit (0 = unlimited); a circuit that exceeds it is closed.' }),
  vanguards_lite: bool()
    .default(true)
    .meta({ description: '`VanguardsLiteEnabled`: long-lived layer-2 guards against guard discovery attacks.' }),
  client_auth: z
    .strictObject({
      keys: z
        .array(
          z.strictObject({
            // It names a file (<name>.auth) in each onion service's AUTHORIZED_CLIENTS: no "/" or ".", and no leading
            // "-" that a command typed on the Pi (ls, rm) would take for an option.
            name: z
              .string()
              .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, {
                error: `must be 1–32 lower-case letters, digits, - or _, starting with a letter or digit (it names the file ${AUTHORIZED_CLIENTS}/<name>.auth)`,
              })
              .meta({
                description:
                  'Whose key it is: 1–32 lower-case letters, digits, `-` or `_`, starting with a letter or digit. It names the key\'s file ' +
                  `(\`${AUTHORIZED_CLIENTS}/<name>.auth\` of each onion service), so each key needs its own name, and not one the Pi gives its own ` +
                  `keys: \`${generatedClientName(1)}\` … \`${generatedClientName('N')}\` (made by \`generate: N\`) or \`${SELF_KEY_NAME}\` (the Pi's key for its own relays).`,
              }),
            public_key: x25519Base32.meta({ description: "The x25519 public key: 52 base32 characters, as in Tor's `.auth` files." }),
          }),
        )
        .default([])
        .meta({
          description:
            "`{name, public_key}` entries: x25519 public keys (52 base32 characters, as in Tor's `.auth` files). With any key, only clients " +
            'holding a matching private key can reach the relays at all. Each `name` is the file name of its key on the Pi, so no two keys ' +
            `share one, and none takes a name the Pi gives its own keys (\`${generatedClientName(1)}\` … \`${generatedClientName('N')}\` with ` +
            `\`generate: N\`, \`${SELF_KEY_NAME}\`).`,
        }),
      generate: int(0, 32)
        .default(0)
        .meta({ description: `Client keys the Pi makes on first boot, named \`${generatedClientName(1)}\` … \`${generatedClientName('N')}\`; their private halves go to the USB stick.` }),
    })
    .superRefine((clientAuth, ctx) => {
      // Each name is one file in each onion service's AUTHORIZED_CLIENTS: a second key of the same name would replace the first
      // (the last one written wins), and a recipe key under a name the Pi writes itself would take that key's place.
      const generated = Array.from({ length: clientAuth.generate }, (_, n) => generatedClientName(n + 1));
      const firstUse = new Map<string, number>();
      for (const [i, { name }] of clientAuth.keys.entries()) {
        const path = ['keys', i, 'name'];
        const first = firstUse.get(name);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `is already the name of keys[${first}]; each key needs its own name, or one would silently replace the other (${AUTHORIZED_CLIENTS}/<name>.auth)`,
          });
          continue;
        }
        firstUse.set(name, i);
        if (name === SELF_KEY_NAME) {
          ctx.addIssue({ code: 'custom', path, message: "is the name of the Pi's own key for its relays; choose another name" });
        }
        if (generated.includes(name)) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `is the name of a key the Pi makes itself (generate: ${clientAuth.generate} makes ${generated.length > 1 ? `${generated[0]} … ${generated.at(-1)}` : generated[0]}); choose another name`,
          });
        }
      }
    })
    .prefault({})
    .meta({ description: 'Client authorization: who may reach the onion services at all.' }),
});

const adminSchema = z.strictObject({
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,30}$/, { error: 'must be a Linux user name: lower-case letters, digits, - or _, starting with a letter' })
    .refine((u) => !isSystemAccountName(u), {
      error: "is a system account of Debian or Raspberry Pi OS, not a person's: the admin gets sudo without a password, so that service would too; choose another name",
    })
    .default('admin')
    .meta({
      description:
        'The user created for the keys below (no password; `sudo` without one). Never a system account, which would hand its service ' +
        'root: the well-known ones of Debian and Raspberry Pi OS (`root`, `nobody`, `messagebus`, `sshd`, `systemd-*`, `_*`, … the list is in ' +
        '`builder/recipe/system-accounts.ts`) are refused, and the build refuses any other account the base image has with a uid outside ' +
        `${FIRST_PERSON_UID}–${LAST_PERSON_UID}. A person's account the image already has (uid ${FIRST_PERSON_UID}–${LAST_PERSON_UID}) is kept as it is and gets the keys and the sudo rule. ` +
        'Do not give Raspberry Pi Imager\'s user the same name: ' +
        "cloud-init would find it existing and ignore Imager's password (its key is still added). The build cannot see the name chosen in " +
        'Imager, so it cannot refuse it.',
    }),
  ssh: z
    .strictObject({
      over_tor: bool()
        .default(false)
        .meta({ description: `SSH as an onion service (\`${SSH_SERVICE}\`, port ${SSH_PORT}): sshd listens on 127.0.0.1 only.` }),
      lan: bool()
        .default(false)
        .meta({
          description:
            `SSH also from the local network: the firewall opens port ${SSH_PORT} to private and link-local addresses only ` +
            '(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, fe80::/10, fc00::/7), never to a global one. ' +
            'Raspberry Pi Imager\'s "Enable SSH" never opens it: SSH from the ' +
            "network is the recipe's choice, and passwords are never accepted, whatever Imager sets " +
            "([what Imager's SSH options do](../docs/raspios-base.md#ssh-and-raspberry-pi-imagers-ssh-options)).",
        }),
      authorized_keys: z
        .array(sshPublicKey)
        .default([])
        .meta({
          description:
            'OpenSSH public key lines, the comment after the key plain text (no control characters, line separators or text-direction marks). ' +
            'SSH never accepts passwords and never lets root log in.',
        }),
    })
    .prefault({})
    .meta({ description: 'How SSH is reached: keys only, never a password, never root.' }),
});

const networkSchema = z.strictObject({
  outbound: z
    .enum(['tor-only', 'open'], { error: 'must be tor-only or open' })
    .default('tor-only')
    .meta({
      description:
        '`tor-only`: only Tor may connect out. The exceptions, each for one program: DHCP as a DHCP client sends it, NTP from ' +
        'systemd-timesyncd, and DNS from systemd-timesyncd and, where the base has it, systemd-resolved (for the NTP servers: Tor ' +
        'needs the right time); anything else is refused ([what the firewall allows, and why](../README.md#the-firewall)). ' +
        "apt goes through Tor: the image's apt sources use `tor+http://`, Debian's archives at their onion services, others through a Tor exit " +
        '([security updates](../README.md#security-updates)). ' +
        '`open`: no outbound filter; apt uses the sources as the base has them.',
    }),
  allow_ping: bool().default(false).meta({ description: 'Answer pings from the local network.' }),
});


/** An age X25519 recipient or null (export.encrypt_to, backup.recipient), checked as the device will use it. */
function ageRecipient() {
  return z
    .string()
    .refine(isAgeRecipient, { error: 'must be an age X25519 recipient (age1… as `age-keygen` prints it; post-quantum age1pq1… recipients are not supported)' })
    .nullable()
    .default(null);
}

const exportSchema = z.strictObject({
  usb_label: z
    .string()
    .regex(/^[A-Z0-9_-]{1,11}$/, { error: 'must be 1–11 upper-case letters, digits, - or _ (a FAT volume label)' })
    .refine((label) => !(RESERVED_FS_LABELS as readonly string[]).includes(label), {
      error: `must not be a label the Pi's own partitions carry (${RESERVED_FS_LABELS.join(', ')}): the export would write into them`,
    })
    .default('SIMPLEX')
    .meta({
      description:
        'The FAT label of the USB stick that receives the addresses (1–11 upper-case letters, digits, `-`, `_`). A stick with ' +
        'another label, or a device that is not USB storage, is never written. The secrets go once, automatically, to the one ' +
        'labelled stick plugged in after first boot; later sticks get only a health report unless `sudo simplex-pi export` ' +
        'is run on the Pi (README: who gets the secrets).',
    }),
  formats: z
    .array(z.enum(['txt', 'json', 'qr'], { error: 'must be txt, json or qr' }))
    .min(1, { error: 'must name at least one format' })
    .default(['txt', 'json', 'qr'])
    .meta({ description: 'What to write: `addresses.txt` (`txt`), `servers.json` (`json`), QR codes (`qr`).' }),
  encrypt_to: ageRecipient()
    .meta({
      description:
        'An age recipient (`age1…`, from `age-keygen`). Every labelled USB stick plugged in then gets the addresses and keys as one ' +
        `archive encrypted to it (\`${ENCRYPTED_ARCHIVE}\`; open it with \`age -d -i KEY ${ENCRYPTED_ARCHIVE} | tar x\`); in the clear only when root runs \`sudo simplex-pi export\` on the Pi.`,
    }),
});

const backupSchema = z.strictObject({
  recipient: ageRecipient()
    .meta({
      description:
        'An age recipient (`age1…`, from `age-keygen`) that backups are encrypted to: `sudo simplex-pi backup` then needs no passphrase, ' +
        'and with `on_stick` the Pi backs up unattended. Keep the identity (the `AGE-SECRET-KEY-1…` file) off the Pi and off the stick: ' +
        'it opens every backup (README: your card died).',
    }),
  on_stick: z
    .boolean()
    .default(false)
    .meta({
      description:
        'With `recipient`: every USB stick with the export label plugged in after first boot also gets a fresh encrypted backup ' +
        "(each SMP relay is stopped for a moment, one at a time, so the messages it holds in memory are in it). Off: backups are made only by `sudo simplex-pi backup`.",
    }),
});

const watchdogSchema = z.strictObject({
  interval_seconds: z
    .number()
    .int()
    .min(30, { error: 'must be 30–86400 seconds' })
    .max(86400, { error: 'must be 30–86400 seconds' })
    .default(600)
    .meta({
      description:
        'How often the Pi reaches each of its own onion services through its own Tor, as a phone does (a SOCKS connection to the onion, ' +
        "then the relay's TLS handshake and identity, or SSH's banner), and checks each relay the same way on its local port. A failure " +
        'is met by one step at a time, each after a longer wait: reload Tor (it publishes the onion services again), restart Tor, restart ' +
        'the relay; a relay that stays broken is reported, never restarted in a loop (README: the watchdog). `simplex-pi status` shows what it saw and did.',
    }),
});

const updateSchema = z.strictObject({
  public_key: z
    .string()
    .trim()
    .refine(
      (key) => {
        if (key === 'project') return true;
        try {
          parsePublicKey(key, 'update.public_key');
          return true;
        } catch {
          return false;
        }
      },
      { error: 'must be `project` or a minisign public key: the base64 line starting with RW (`minisign -P`, or the last line of a minisign.pub)' },
    )
    .default('project')
    .meta({
      description:
        'The minisign public key relay update bundles must be signed with (`simplex-pi update`, README: updating the relays). `project`: the ' +
        "project's release key, the one README.md publishes; the image carries no update key until the project has published one. Your own key " +
        '(from `simplex-pi keygen`) if you sign bundles yourself.',
    }),
  check_url: httpUrl
    .nullable()
    .default(null)
    .meta({
      description:
        'Off (null) by default. A URL that always serves the newest relay update bundle, with its signature at the same URL plus `.minisig`: ' +
        'once a day, at a random time, the Pi fetches it through Tor and applies it if it holds a newer simplexmq than the relays run, ' +
        'with the same checks, one-at-a-time restarts and rollback as `simplex-pi update` by hand.',
    }),
});

export const recipeSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, {
        error: 'must be 1–40 lower-case letters, digits or dashes, starting with a letter or digit (it names the output files)',
      })
      .meta({ description: '1–40 lower-case letters, digits or dashes. Names the output directory and files.' }),
    description: z.string().default('').meta({ description: 'Free text, shown by `simplex-pi recipes` and recorded in the manifest.' }),
    models: z
      .array(z.enum(PI_MODELS, { error: `must be one of ${PI_MODELS.join(', ')} (64-bit models only: the relays are aarch64 programs)` }))
      .min(1, { error: 'must name at least one model' })
      .default([...PI_MODELS])
      .meta({
        description:
          'The Raspberry Pi models the image is meant for: `zero2w`, `pi3` (and Compute Module 3), `pi4` (and 400, Compute Module 4), `pi5` ' +
          '(and 500, Compute Module 5). 64-bit models only, since the relays are aarch64 programs. Raspberry Pi Imager offers the image only for ' +
          'these (its `devices` tags: `pi3-64bit`, which the Zero 2 W shares, `pi4-64bit`, `pi5-64bit`). The presets list what their relay count ' +
          'fits in memory.',
      }),
    base: baseSchema
      .default({
        provider: 'raspios',
        release: 'latest',
        imager_json: RASPIOS_IMAGER_JSON,
        os_name: RASPIOS_LITE_ARM64,
      })
      .meta({ description: 'The image to start from, chosen by `provider`: `raspios`, `debian` or `file`.' }),
    hostname: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, { error: 'must be a host name: lower-case letters, digits and dashes, at most 63' })
      .default('simplex-pi')
      .meta({ description: "The Pi's host name." }),
    // Only the name's form is checked here: the build checks the zone is in the image's own tzdata
    // (builder/recipe/timezones.ts says why not Node's list).
    timezone: z
      .string()
      .regex(TIMEZONE_NAME, { error: 'must be a time zone name like Europe/Berlin, Asia/Kolkata or UTC' })
      .refine((tz) => !NOT_ZONES.includes(tz), { error: 'must be a time zone name like Europe/Berlin, Asia/Kolkata or UTC' })
      .default('UTC')
      .meta({
        description:
          "An IANA time zone name such as `Europe/Berlin` or `Asia/Kolkata`. The build checks that the image's own time zone database has it " +
          '(`/usr/share/zoneinfo/<name>`, a real zone file), because that is what the Pi reads; a missing zone would leave the Pi on UTC without ' +
          'a word. Old names that newer systems dropped (`Asia/Calcutta`, `Europe/Kiev`, `US/Eastern`, … the list is in ' +
          '`builder/recipe/timezones.ts`) are accepted with a warning and written as the current name.',
      }),
    smp: smpSchema.prefault({}).meta({ description: 'The SMP relays: they hold the queues through which messages travel.' }),
    xftp: xftpSchema.prefault({}).meta({ description: 'The file relay: holds files in transit between the group\'s apps.' }),
    tor: torSchema.prefault({}).meta({ description: "Tor's settings for the onion services." }),
    admin: adminSchema.prefault({}).meta({ description: 'Logging in: the admin user and SSH.' }),
    network: networkSchema.prefault({}).meta({ description: "The firewall's policy." }),
    export: exportSchema.prefault({}).meta({ description: 'The USB stick that receives the addresses.' }),
    backup: backupSchema
      .prefault({})
      .meta({ description: "Encrypted backups of the relays' identities and stores, to restore onto a new card (README: your card died)." }),
    watchdog: watchdogSchema
      .prefault({})
      .meta({ description: 'The onion watchdog: each service reached through Tor at an interval, and recovered step by step when it is not.' }),
    update: updateSchema
      .prefault({})
      .meta({ description: 'Relay updates without reflashing: which key a signed simplexmq update bundle must carry, and whether the Pi looks for one itself.' }),
    source_date_epoch: z
      .number()
      .int({ error: 'must be a whole number of seconds since 1970-01-01 UTC' })
      .min(315532800, { error: 'must be a time after 1980-01-01 (the FAT boot partition cannot hold an earlier one)' })
      .nullable()
      .default(null)
      .meta({
        description:
          'The time (seconds since 1970-01-01 UTC) every file time in the image is clamped to, so the same inputs give the same image bytes on any ' +
          "day (README: reproducible images). Null: the base's release date (Raspberry Pi OS), else the last write time of the base's root " +
          'filesystem. The SOURCE_DATE_EPOCH environment variable, when set, takes precedence.',
      }),
    overlays: z
      .array(z.string().min(1))
      .default([])
      .meta({
        description:
          "Extra directories copied into the image's root, as they are, owned by root, after the rendered configuration (e.g. " +
          '`overlays: [my-files]` with `my-files/etc/motd`). The build still refuses an image with a private key in it.',
      }),
    simplexmq: z
      .strictObject({
        version: z
          .string()
          .regex(/^v?\d+\.\d+\.\d+(\.\d+)?(-[0-9A-Za-z.]+)?$/, { error: 'must be a simplexmq version like 6.5.2' })
          .transform((v) => v.replace(/^v/, ''))
          .default(SIMPLEXMQ_VERSION)
          .meta({
            description:
              'The simplexmq release. The build runs each binary with `-v` inside the image and stops if it reports another version (`6.5.2` ' +
              "matches `6.5.2.x`; a pre-release such as `6.5.0-beta.8` matches any `6.5.0.x`, because upstream's betas report a cabal number " +
              `unrelated to the tag). Releases before ${SIMPLEXMQ_FIRST_AARCH64} have no aarch64 assets and are refused unless \`smp_server\`/` +
              '`xftp_server` name your own build.',
          }),
        release_notes_url: httpUrl
          .default(SIMPLEXMQ_RELEASE_API)
          .meta({ description: "Where the release notes' checksums are read (GitHub's release API): by `sha256: release-notes`, by `lock` to check them against the lock, and by `build --update-lock`; `{version}` is replaced by `version`." }),
        smp_server: binarySource
          .optional()
          .meta({ description: `The smp-server binary: \`url\` + \`sha256\`, or \`path\` + \`sha256\`. Unset: the release asset \`smp-server-${SIMPLEXMQ_ASSET_SUFFIX}\` with \`sha256: lock\`.` }),
        xftp_server: binarySource
          .optional()
          .meta({ description: `The xftp-server binary, like \`smp_server\`. Unset: the release asset \`xftp-server-${SIMPLEXMQ_ASSET_SUFFIX}\` with \`sha256: lock\`.` }),
        // Off by default: a relay that cannot start is worse than one sandboxed slightly less.
        memory_deny_write_execute: bool()
          .default(false)
          .meta({
            description:
              'Adds `MemoryDenyWriteExecute=yes` to the relay units. Off by default: whether the GHC-built binaries tolerate it is not verified.',
          }),
      })
      .prefault({})
      .meta({ description: 'The simplexmq release and its smp-server and xftp-server binaries.' }),
  })
  .superRefine((recipe, ctx) => {
    if (recipe.backup.on_stick && recipe.backup.recipient === null) {
      ctx.addIssue({ code: 'custom', path: ['backup', 'on_stick'], message: 'needs backup.recipient: a backup written to a stick is always encrypted, and the Pi cannot ask for a passphrase unattended' });
    }
    const taken = new Map<number, string>(Object.entries(RESERVED_LOCAL_PORTS).map(([p, what]) => [Number(p), what]));
    const claim = (portNumber: number, what: string, path: PropertyKey[]) => {
      const holder = taken.get(portNumber);
      if (holder) ctx.addIssue({ code: 'custom', path, message: `port ${portNumber} for ${what} collides with ${holder}; choose another` });
      else taken.set(portNumber, what);
    };
    const ports = smpLocalPorts(recipe.smp.local_port_base, recipe.smp.instances);
    if (ports.at(-1)! > 65535) ctx.addIssue({ code: 'custom', path: ['smp', 'local_port_base'], message: `${recipe.smp.instances} instances from port ${recipe.smp.local_port_base} would go past 65535` });
    for (const [i, port] of ports.entries()) {
      if (port > 65535) break;
      claim(port, `SMP relay ${i + 1}`, ['smp', 'local_port_base']);
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
