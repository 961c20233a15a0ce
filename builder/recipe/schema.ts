import { z } from 'zod';

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
  init_format: z.enum(['', 'none', 'systemd', 'cloudinit', 'cloudinit-rpi', 'rpi-preseed']).optional(),
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

export const recipeSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, {
      error: 'must be 1–40 lower-case letters, digits or dashes, starting with a letter or digit (it names the output files)',
    }),
  description: z.string().default(''),
  base: baseSchema.default({
    provider: 'raspios',
    release: 'latest',
    imager_json: RASPIOS_IMAGER_JSON,
    os_name: RASPIOS_LITE_ARM64,
  }),
  smp: z
    .strictObject({
      instances: z
        .number({ error: 'must be a whole number from 1 to 32' })
        .int({ error: 'must be a whole number from 1 to 32' })
        .min(1, { error: 'must be 1–32' })
        .max(32, { error: 'must be 1–32' })
        .default(1),
    })
    .default({ instances: 1 }),
  xftp: z
    .strictObject({
      enabled: z.boolean({ error: 'must be true or false' }).default(true),
    })
    .default({ enabled: true }),
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
    })
    .default({ version: SIMPLEXMQ_VERSION, release_notes_url: SIMPLEXMQ_RELEASE_API }),
});

export type Recipe = z.output<typeof recipeSchema>;
export type BaseSpec = z.output<typeof baseSchema>;
export type BinarySourceSpec = z.output<typeof binarySource>;
