import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { messageOf } from '../errors.ts';

/**
 * cloud-init in the image, as far as the build needs it: Raspberry Pi OS Trixie consumes Raspberry Pi Imager's
 * customisation with it (init_format cloudinit-rpi).
 */

export const CLOUD_INIT = '/usr/bin/cloud-init';
export const CLOUD_CFG = '/etc/cloud/cloud.cfg';
export const CLOUD_CFG_D = '/etc/cloud/cloud.cfg.d';
/** Ours: read after every other snippet (cloud-init reads cloud.cfg.d/*.cfg in name order, the last one wins). */
export const SIMPLEX_PI_CLOUD_CFG = `${CLOUD_CFG_D}/99_simplex-pi.cfg`;
const PACKAGE_STEP = 'package_update_upgrade_install';

export interface CloudInitConfig {
  /** The system configuration as cloud-init merges it: cloud.cfg, then cloud.cfg.d/*.cfg over it, later names winning. */
  merged: Record<string, unknown>;
  /** Files that could not be read as YAML (e.g. Jinja templates, which cloud-init renders first), left out. */
  unreadable: Array<{ path: string; error: string }>;
}

const isMapping = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** cloud-init's util.mergemanydict: the first source that has a key wins; mappings are merged key by key. */
function mergeFirstWins(sources: Array<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of sources) {
    for (const [key, value] of Object.entries(source)) {
      if (!(key in out)) out[key] = value;
      else if (isMapping(out[key]) && isMapping(value)) out[key] = mergeFirstWins([out[key] as Record<string, unknown>, value]);
    }
  }
  return out;
}

export async function hasCloudInit(root: string): Promise<boolean> {
  return Boolean(await lstat(join(root, CLOUD_INIT)).catch(() => undefined));
}

/** One configuration file as cloud-init finds it: its path in the image and its text. */
export interface CloudConfigFile {
  path: string;
  text: string;
}

/**
 * cloud-init's system configuration from its files, as cloud-init merges them: `files` in the order cloud-init
 * reads them (cloud.cfg, then cloud.cfg.d/*.cfg sorted by name); a later file's key replaces an earlier one's,
 * mappings merged key by key (lists are not merged). Pure, so `inspect-base` reads an image with the same rules.
 */
export function mergeCloudConfig(files: readonly CloudConfigFile[]): CloudInitConfig {
  const sources: Array<Record<string, unknown>> = [];
  const unreadable: CloudInitConfig['unreadable'] = [];
  for (const file of [...files].reverse()) {
    try {
      const data: unknown = parse(file.text);
      if (isMapping(data)) sources.push(data);
    } catch (error) {
      unreadable.unshift({ path: file.path, error: messageOf(error).split('\n')[0] ?? '' });
    }
  }
  return { merged: mergeFirstWins(sources), unreadable };
}

/** cloud.cfg.d snippets in the order cloud-init reads them. */
export function cloudCfgSnippetOrder(names: readonly string[]): string[] {
  return names.filter((name) => name.endsWith('.cfg')).sort();
}

/** The image's cloud-init system configuration, or undefined if the image has no cloud-init. */
export async function readCloudInitConfig(root: string, options: { skip?: string[] } = {}): Promise<CloudInitConfig | undefined> {
  if (!(await hasCloudInit(root))) return undefined;
  const snippets = cloudCfgSnippetOrder(await readdir(join(root, CLOUD_CFG_D)).catch(() => [] as string[]))
    .map((name) => `${CLOUD_CFG_D}/${name}`)
    .filter((path) => !options.skip?.includes(path));
  const files: CloudConfigFile[] = [];
  for (const path of [CLOUD_CFG, ...snippets]) {
    const text = await readFile(join(root, path), 'utf8').catch(() => undefined);
    if (text !== undefined) files.push({ path, text });
  }
  return mergeCloudConfig(files);
}

/** A module list entry is a name, or [name, frequency, …], or {name: …}. */
export function moduleName(entry: unknown): string | null {
  const name = Array.isArray(entry) ? entry[0] : isMapping(entry) ? entry.name : entry;
  return typeof name === 'string' ? name : null;
}

/**
 * The snippet that keeps cloud-init's package step from running, or undefined if the image's cloud-init does not
 * run one. cloud-init has no switch to leave one module out, so the snippet is the image's own final-stage list
 * without it (derived here from the image, so no other module of the base is lost).
 */
export function packageStepSnippet(config: CloudInitConfig): string | undefined {
  const modules = config.merged.cloud_final_modules;
  if (!Array.isArray(modules) || !runsPackageStep(config)) return undefined;
  return [
    '# Written by simplex-pi when the image was built: cloud-init\'s final stage as this base has it, without',
    `# ${PACKAGE_STEP}.`,
    '#',
    '# Raspberry Pi Imager asks cloud-init to install avahi-daemon whenever it sets a host name (`packages:` in its',
    '# user-data). That step runs `apt-get update` and `apt-get install` on the first boot. On this appliance packages',
    '# come with the image (avahi-daemon is part of Raspberry Pi OS Lite); with the firewall\'s tor-only outbound',
    '# policy apt cannot reach an archive at all, so the step could only fail (a package the base lacks makes',
    '# cloud-final end in an error) or, with outbound open, contact the archives over the clearnet. Skipped, it does',
    '# neither. Every other module of the base\'s list is kept, in its order.',
    stringify({ cloud_final_modules: modules.filter((m) => moduleName(m) !== PACKAGE_STEP) }).trimEnd(),
    '',
  ].join('\n');
}

export function runsPackageStep(config: CloudInitConfig): boolean {
  const modules = config.merged.cloud_final_modules;
  return Array.isArray(modules) && modules.some((m) => moduleName(m) === PACKAGE_STEP);
}

/**
 * configure: write the snippet into the mounted image when its cloud-init would run the package step. Returns
 * what the user should know: files cloud-init may read differently than this did, or a snippet that lost.
 */
export async function skipCloudInitPackageStep(root: string): Promise<string[]> {
  const config = await readCloudInitConfig(root, { skip: [SIMPLEX_PI_CLOUD_CFG] });
  if (!config) return [];
  const warnings = config.unreadable.map(({ path }) => `${path} in the image is not plain YAML (a template?); cloud-init's package step may still run on first boot`);
  const snippet = packageStepSnippet(config);
  if (!snippet) return warnings;
  await mkdir(join(root, CLOUD_CFG_D), { recursive: true });
  await writeFile(join(root, SIMPLEX_PI_CLOUD_CFG), snippet, { mode: 0o644 });
  const after = await readCloudInitConfig(root);
  if (after && runsPackageStep(after)) warnings.push(`another file in ${CLOUD_CFG_D} sorts after ${SIMPLEX_PI_CLOUD_CFG} and sets cloud_final_modules: cloud-init's package step still runs on first boot`);
  return warnings;
}
