import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { type CloudInitConfig, readCloudInitConfig } from '../image/cloud-init.ts';

/**
 * Raspberry Pi Imager's `init_format`: which customisation files Imager writes to the boot partition of a card
 * it flashes (rpi-imager doc/os_customisation_formats.md). It is only useful if the image has the program that
 * reads them (its *consumer*); with the wrong value the customisation is silently ignored, and `systemd` also
 * appends `systemd.unit=kernel-command-line.target` to cmdline.txt. Imager 2.x treats a missing value as `none`.
 */

/** The formats Imager knows (its os-list schema's enum); `none` and `""` turn customisation off. */
export const INIT_FORMATS = ['', 'none', 'systemd', 'cloudinit', 'cloudinit-rpi', 'rpi-preseed'] as const;
export type InitFormat = (typeof INIT_FORMATS)[number];

/** Imager's systemd-format firstrun.sh hands its work to this script of raspberrypi-sys-mods. */
export const IMAGER_SYSTEMD_HOOK = '/usr/lib/raspberrypi-sys-mods/imager_custom';
/** rpi-preseed reads Imager's rpi-preseed.toml from the boot partition. */
const RPI_PRESEED_UNITS = ['/usr/lib/systemd/system/rpi-preseed.service', '/lib/systemd/system/rpi-preseed.service'];
/** Raspberry Pi's own cloud-init pieces: its package of configuration, or the cc_raspberry_pi module Imager's `rpi:` key is for. */
const RPI_CLOUD_INIT_PACKAGE = 'rpi-cloud-init-mods';
const CC_RASPBERRY_PI = '/usr/lib/python3/dist-packages/cloudinit/config/cc_raspberry_pi.py';

export interface DetectedInitFormat {
  /** What the image's consumers suggest, most capable first. */
  preferred: InitFormat;
  /** Every format the image has a consumer for (`none` always). */
  supported: InitFormat[];
  /** What was found, in words, for messages and the manifest. */
  evidence: string;
}

const exists = async (root: string, path: string) => Boolean(await lstat(join(root, path)).catch(() => undefined));

async function dpkgInstalled(root: string, name: string): Promise<boolean> {
  const status = await readFile(join(root, 'var/lib/dpkg/status'), 'utf8').catch(() => '');
  return status.split('\n\n').some((stanza) => new RegExp(`^Package: ${name}$`, 'm').test(stanza) && /^Status: install ok installed$/m.test(stanza));
}

/** cloud-init reads Imager's user-data only if NoCloud is enabled and seeded from the boot partition. */
function noCloudSeed(config: CloudInitConfig): string | undefined {
  const list = config.merged.datasource_list;
  if (Array.isArray(list) && !list.includes('NoCloud')) return undefined;
  const datasource = config.merged.datasource as { NoCloud?: { seedfrom?: unknown } } | undefined;
  const seed = datasource?.NoCloud?.seedfrom;
  return typeof seed === 'string' ? seed : undefined;
}

/** cloud-init's own off switches (cloud-init's ds-identify and systemd generator read both). */
export const CLOUD_INIT_DISABLED = '/etc/cloud/cloud-init.disabled';
const CMDLINE_DISABLED = 'cloud-init=disabled';

/**
 * The consumers of Imager's customisation in a mounted image whose boot partition is at `bootPath`. `cmdline` is
 * the kernel command line the image boots with (read from `bootPath`/cmdline.txt when not given).
 */
export async function detectInitFormat(root: string, bootPath: string, options: { cmdline?: string } = {}): Promise<DetectedInitFormat> {
  const found: Array<[InitFormat, string]> = [];
  const cloudInit = await readCloudInitConfig(root);
  const cmdline = options.cmdline ?? (await readFile(join(root, bootPath, 'cmdline.txt'), 'utf8').catch(() => ''));
  const disabled = (await exists(root, CLOUD_INIT_DISABLED))
    ? CLOUD_INIT_DISABLED
    : cmdline.split(/\s+/).includes(CMDLINE_DISABLED)
      ? `${CMDLINE_DISABLED} on the kernel command line`
      : undefined;
  if (cloudInit && disabled) {
    found.push(['none', `cloud-init, but disabled (${disabled}), so Imager's files would be ignored`]);
  } else if (cloudInit) {
    const seed = noCloudSeed(cloudInit);
    if (seed && seed.replace(/\/+$/, '') === `file://${bootPath}`) {
      const rpi = (await dpkgInstalled(root, RPI_CLOUD_INIT_PACKAGE)) || (await exists(root, CC_RASPBERRY_PI));
      const what = `cloud-init with NoCloud seeded from the boot partition (${seed})${rpi ? ` and Raspberry Pi's cloud-init additions (${RPI_CLOUD_INIT_PACKAGE})` : ''}`;
      if (rpi) found.push(['cloudinit-rpi', what]);
      found.push(['cloudinit', what]);
      if (!rpi) found.push(['cloudinit-rpi', what]);
    } else {
      found.push(['none', `cloud-init, but not reading the boot partition (NoCloud seedfrom: ${seed ?? 'not set'}), so Imager's files would be ignored`]);
    }
  }
  for (const unit of RPI_PRESEED_UNITS) if (await exists(root, unit)) found.push(['rpi-preseed', `rpi-preseed (${unit})`]);
  if (await exists(root, IMAGER_SYSTEMD_HOOK)) found.push(['systemd', `Raspberry Pi OS's hook for Imager's firstrun.sh (${IMAGER_SYSTEMD_HOOK})`]);
  const consumers = found.filter(([format]) => format !== 'none');
  const preferred = consumers[0]?.[0] ?? 'none';
  const evidence = [...new Set(found.map(([, what]) => what))].join('; ') || 'no consumer of Imager\'s customisation (no cloud-init, rpi-preseed or firstrun hook)';
  return { preferred, supported: [...new Set<InitFormat>(['none', '', ...consumers.map(([format]) => format)])], evidence };
}

export interface InitFormatChoice {
  format: InitFormat;
  /** Why this value, for the manifest and the build log. */
  reason: string;
  /** Something the user should hear about (the build goes on). */
  warning?: string;
}

const isInitFormat = (value: string): value is InitFormat => (INIT_FORMATS as readonly string[]).includes(value);
const off = (format: string) => format === '' || format === 'none';

/**
 * The value to publish. The recipe's `base.init_format` wins over everything (it is the way to override). Else
 * Imager's list wins when the image has its consumer, since that pairing is what Raspberry Pi tested for the
 * release; a list value whose consumer is missing stops the build (Imager would write files nobody reads). With
 * nothing listed (a pinned image, a local file, the Debian base) the image decides.
 */
export function chooseInitFormat(input: { detected: DetectedInitFormat; listed?: string; recipe?: string; base: string }): InitFormatChoice {
  const { detected, listed, recipe, base } = input;
  if (recipe !== undefined) {
    if (!isInitFormat(recipe)) throw new UserError(`recipe base.init_format "${recipe}" is not one Raspberry Pi Imager knows (${INIT_FORMATS.filter(Boolean).join(', ')})`);
    const reason = `set in the recipe (base.init_format); the image has ${detected.evidence}`;
    if (detected.supported.includes(recipe)) return { format: recipe, reason };
    return {
      format: recipe,
      reason,
      warning:
        `recipe base.init_format is ${recipe}, but ${base} has no consumer for it (it has ${detected.evidence}): Imager's customisation will be ignored` +
        `${recipe === 'systemd' ? ', and its systemd.unit=kernel-command-line.target may keep the first boot from reaching the relays' : ''}. The recipe wins; ` +
        `${detected.preferred} is what the image supports.`,
    };
  }
  if (listed !== undefined) {
    if (!isInitFormat(listed)) throw new UserError(`Raspberry Pi Imager's list gives ${base} the init_format "${listed}", which Imager itself does not know; set base.init_format in the recipe`);
    if (detected.supported.includes(listed)) {
      const agrees = listed === detected.preferred || (off(listed) && off(detected.preferred));
      const reason = `Imager's list says ${listed || '""'}${agrees ? ', and the image has its consumer' : `; the image also has ${detected.evidence}`}`;
      if (agrees || !off(listed)) return { format: listed, reason };
      return {
        format: listed,
        reason,
        warning: `Imager's list says init_format ${listed || '""'} for ${base}, though the image has ${detected.evidence}: Imager will offer no customisation. The list wins; set base.init_format: ${detected.preferred} in the recipe to offer it.`,
      };
    }
    throw new UserError(
      `Raspberry Pi Imager's list says init_format ${listed} for ${base}, but the image has no consumer for it (it has ${detected.evidence}): ` +
        `Imager would write customisation that nothing on the card reads. ${detected.preferred === 'none' ? 'The image supports no customisation' : `The image supports ${detected.preferred}`}. ` +
        `Set base.init_format: ${detected.preferred} in the recipe to build with that, or check that the recipe's base names the image you mean.`,
    );
  }
  return { format: detected.preferred, reason: `detected in the image: ${detected.evidence}` };
}
