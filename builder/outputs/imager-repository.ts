import { z } from 'zod';
import { INIT_FORMATS } from '../base/init-format.ts';
import { UserError } from '../errors.ts';
import { parseJsonAs } from '../parse-json.ts';
import type { PiModel } from '../recipe/schema.ts';
import type { OutputFile } from './manifest.ts';

/**
 * Raspberry Pi Imager's repository JSON for our images (docs/raspberry-pi-imager.md; checked against
 * Imager's own os-list schema in the tests). Pure: every value comes from the caller.
 */

/**
 * Imager's device tag per model, 64-bit only (the relays are aarch64 programs). The Zero 2 W has a Pi 3's SoC and
 * Imager's own device list gives it the Pi 3's tag.
 */
export const DEVICE_TAGS: Record<PiModel, string> = { zero2w: 'pi3-64bit', pi3: 'pi3-64bit', pi4: 'pi4-64bit', pi5: 'pi5-64bit' };

export interface ImagerDevice {
  name: string;
  description: string;
  icon: string;
  tags: string[];
  matching_type: 'exclusive' | 'inclusive';
  architecture: 'armv8';
}

const ICONS = 'https://downloads.raspberrypi.com/imager/icons';

/**
 * The "Choose device" entries, worded and pictured as in Imager's official repository. A repository given with
 * `--repo` replaces the official one, device list included, so ours carries the devices its images are for.
 */
const DEVICES: Record<PiModel, ImagerDevice> = {
  pi5: { name: 'Raspberry Pi 5', description: 'Raspberry Pi 5, 500 / 500+, and Compute Module 5', icon: `${ICONS}/RPi_5.png`, tags: ['pi5-64bit'], matching_type: 'exclusive', architecture: 'armv8' },
  pi4: { name: 'Raspberry Pi 4', description: 'Raspberry Pi 4 Model B, 400, and Compute Module 4 / 4S', icon: `${ICONS}/RPi_4.png`, tags: ['pi4-64bit'], matching_type: 'exclusive', architecture: 'armv8' },
  pi3: { name: 'Raspberry Pi 3', description: 'Raspberry Pi 3 Model A+ / B / B+ and Compute Module 3 / 3+', icon: `${ICONS}/RPi_3.png`, tags: ['pi3-64bit'], matching_type: 'exclusive', architecture: 'armv8' },
  zero2w: { name: 'Raspberry Pi Zero 2 W', description: 'The Raspberry Pi Zero 2 W', icon: `${ICONS}/RPi_Zero_2_W.png`, tags: ['pi3-64bit'], matching_type: 'exclusive', architecture: 'armv8' },
};

/** Newest first, as Imager lists them. */
const DEVICE_ORDER: readonly PiModel[] = ['pi5', 'pi4', 'pi3', 'zero2w'];

export function deviceTags(models: readonly PiModel[]): string[] {
  return [...new Set(DEVICE_ORDER.filter((m) => models.includes(m)).map((m) => DEVICE_TAGS[m]))];
}

export function imagerDevices(models: readonly PiModel[]): ImagerDevice[] {
  return DEVICE_ORDER.filter((m) => models.includes(m)).map((m) => DEVICES[m]);
}


const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** One image in Imager's list; the fields Imager reads (oslistmodel.cpp) plus `image_download_sha256` (create_local_json.py). */
export const imagerOsEntrySchema = z.object({
  name: z.string().min(1),
  description: z.string(),
  icon: z.string(),
  url: z.string().min(1),
  extract_size: z.number().int().positive(),
  extract_sha256: sha256,
  image_download_size: z.number().int().positive(),
  image_download_sha256: sha256,
  release_date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  init_format: z.enum(INIT_FORMATS),
  devices: z.array(z.string()).min(1),
  architecture: z.literal('armv8'),
});
export type ImagerOsEntry = z.infer<typeof imagerOsEntrySchema>;

const deviceSchema = z.object({
  name: z.string(),
  description: z.string(),
  icon: z.string(),
  tags: z.array(z.string()),
  matching_type: z.enum(['exclusive', 'inclusive']),
  architecture: z.literal('armv8'),
});

export const imagerRepositorySchema = z.object({
  imager: z.object({ devices: z.array(deviceSchema) }),
  os_list: z.array(imagerOsEntrySchema).min(1),
});
export type ImagerRepository = z.infer<typeof imagerRepositorySchema>;

/** Imager hashes customisation passwords with yescrypt only for images released from this date on (`osUsesYescrypt`). */
export const YESCRYPT_FROM = '2023-01-01';

/**
 * `release_date` is the image's date (UTC): its SOURCE_DATE_EPOCH (image/source-date-epoch.ts), so that the same
 * inputs give the same Imager files. A date before 2023 would make Imager write the first user's password as
 * sha256crypt, which current Raspberry Pi OS does not expect.
 */
export function releaseDate(imageDate: Date): string {
  const date = imageDate.toISOString().slice(0, 10);
  if (date < YESCRYPT_FROM) {
    throw new UserError(
      `the image's date (SOURCE_DATE_EPOCH) is ${date}; Raspberry Pi Imager treats images released before ${YESCRYPT_FROM} as old ones and would ` +
        'hash the password the old way. Set the recipe\'s source_date_epoch (or SOURCE_DATE_EPOCH) to a later time and build again',
    );
  }
  return date;
}

export interface OsEntryInput {
  /** Recipe name: the entry is called "SimpleX relays: <name>". */
  name: string;
  /** The recipe's description. */
  description: string;
  /** What the image is built on, e.g. "Raspberry Pi OS Lite (64-bit) 2025-10-01". */
  baseDescription: string;
  /** The uncompressed image. */
  image: OutputFile;
  /** What Imager downloads: the .img.xz, or the image itself when it was not compressed. */
  download: OutputFile;
  /** Where the download is: an https:// URL, or a file:// URL for a local repository. */
  url: string;
  releaseDate: string;
  /** The customisation format the image's consumer understands (chosen in configure, base/init-format.ts). */
  initFormat: string;
  models: readonly PiModel[];
}

export function imagerOsEntry(input: OsEntryInput): ImagerOsEntry {
  if (!(INIT_FORMATS as readonly string[]).includes(input.initFormat)) {
    throw new UserError(`the base's Raspberry Pi Imager init_format "${input.initFormat}" is not one Imager knows (${INIT_FORMATS.filter(Boolean).join(', ')}); set base.init_format in the recipe`);
  }
  const what = input.description.trim() || 'Private, Tor-only SimpleX relays';
  return {
    name: `SimpleX relays: ${input.name}`,
    description: `${what.replace(/\.$/, '')}. Built on ${input.baseDescription}.`,
    // No icon of our own yet; Imager shows the entry without one.
    icon: '',
    url: input.url,
    extract_size: input.image.size,
    extract_sha256: input.image.sha256,
    image_download_size: input.download.size,
    image_download_sha256: input.download.sha256,
    release_date: input.releaseDate,
    init_format: input.initFormat as ImagerOsEntry['init_format'],
    devices: deviceTags(input.models),
    architecture: 'armv8',
  };
}

/** A repository of the given entries; the device list covers every model any of them is for. */
export function imagerRepository(entries: ImagerOsEntry[], models: readonly PiModel[]): ImagerRepository {
  return imagerRepositorySchema.parse({ imager: { devices: imagerDevices(models) }, os_list: entries });
}

/**
 * One repository listing the entries of several (the release's os-list.json): every entry, in the order given,
 * and each device of any of them once, newest model first.
 */
export function combineRepositories(repositories: readonly ImagerRepository[]): ImagerRepository {
  const rank = (device: { name: string }) => DEVICE_ORDER.findIndex((m) => DEVICES[m].name === device.name);
  const devices = new Map<string, ImagerDevice>();
  for (const repository of repositories) for (const device of repository.imager.devices) if (!devices.has(device.name)) devices.set(device.name, device);
  return imagerRepositorySchema.parse({
    imager: { devices: [...devices.values()].sort((a, b) => rank(a) - rank(b)) },
    os_list: repositories.flatMap((r) => r.os_list),
  });
}

/** `--publish-url`: an http(s) URL of the directory the image will be published in. */
export function checkPublishUrl(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
    throw new UserError(`--publish-url must be the http:// or https:// URL of the directory the image will be downloaded from, e.g. https://example.org/simplex-pi/v1 (got "${text}")`);
  }
  return text;
}

/** `<base>/<file>` for a download published under `base` (a trailing slash on `base` is allowed). */
export function publishedUrl(base: string, file: string): string {
  return `${base.replace(/\/+$/, '')}/${encodeURIComponent(file)}`;
}

/** The repository JSON a build writes (for `rpi-imager --repo`, or to publish). */
export function imagerJsonName(name: string): string {
  return `${name}.rpi-imager.json`;
}

/** The same for the local file: Imager registers this extension and opens it on a double-click. */
export function imagerManifestName(name: string): string {
  return `${name}.rpi-imager-manifest`;
}

export function imagerJsonText(repository: ImagerRepository): string {
  return `${JSON.stringify(repository, null, 2)}\n`;
}

/** Read a repository JSON we wrote (a per-build one, or a combined one), with a message naming the file. */
export function parseImagerRepository(text: string, source: string): ImagerRepository {
  return parseJsonAs(imagerRepositorySchema, text, source, {
    notJson: 'is not JSON; was it written by simplex-pi build?',
    invalid: 'is not a Raspberry Pi Imager repository written by simplex-pi',
  });
}
