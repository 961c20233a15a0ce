import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import type { Partition } from './partitions.ts';

/**
 * Reading an image's ext4 root filesystem with the host's e2fsprogs, in place and read-only: no loop device, no
 * mount. libext2fs opens `image?offset=N` as the filesystem that starts N bytes into the file.
 */

export function ext4Target(image: string, partition: Partition): string {
  return `${image}?offset=${partition.start * 512}`;
}

/**
 * Features that a current base may have and an older e2fsprogs cannot handle: e2fsck, resize2fs, mke2fs and debugfs
 * (all built on the host's libext2fs) refuse the filesystem. `flag` is how a dumpe2fs that does not know the
 * feature prints it (C/I/R: compat, incompat, ro_compat, and the bit number). Debian trixie's mke2fs.conf turns on
 * orphan_file and metadata_csum_seed, and Raspberry Pi OS Trixie's root filesystem is made with it.
 */
const NEWER_FEATURES: ReadonlyArray<{ name: string; flag: string; since: string }> = [
  { name: 'orphan_file', flag: 'FEATURE_C12', since: '1.47.0' },
  { name: 'orphan_present', flag: 'FEATURE_R16', since: '1.47.0' },
  { name: 'metadata_csum_seed', flag: 'FEATURE_I13', since: '1.43' },
  { name: 'large_dir', flag: 'FEATURE_I14', since: '1.44' },
  { name: 'ea_inode', flag: 'FEATURE_I10', since: '1.44' },
  { name: 'casefold', flag: 'FEATURE_I17', since: '1.45' },
  { name: 'stable_inodes', flag: 'FEATURE_C11', since: '1.45.6' },
  { name: 'fast_commit', flag: 'FEATURE_C10', since: '1.46.0' },
];

/** The e2fsprogs release that first handles `feature`, for the features a current base may have; else undefined. */
export function featureSince(feature: string): string | undefined {
  return NEWER_FEATURES.find((n) => n.name === feature || n.flag === feature)?.since;
}

/** The "Filesystem features:" line of `dumpe2fs -h`. */
export function parseFeatures(dumpe2fs: string): string[] {
  const line = /^Filesystem features:\s*(.*)$/m.exec(dumpe2fs)?.[1];
  if (line === undefined) throw new UserError('dumpe2fs printed no "Filesystem features" line: is the root partition ext4?');
  return line.trim() === '(none)' ? [] : line.trim().split(/\s+/);
}

export interface Dumpe2fs {
  label: string;
  uuid: string;
  features: string[];
  blockSize: number | null;
  blockCount: number | null;
  freeBlocks: number | null;
  state: string | null;
}

/** One field of `dumpe2fs -h`, trimmed, or null when it is not printed. */
export function dumpe2fsField(text: string, name: string): string | null {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? null;
}

/** What `dumpe2fs -h` says of a filesystem that more than one reader needs (inspect-base, recreate-root). */
export function parseDumpe2fs(text: string): Dumpe2fs {
  const field = (name: string) => dumpe2fsField(text, name);
  const number = (name: string) => {
    const value = field(name);
    return value === null || !/^\d+$/.test(value) ? null : Number(value);
  };
  const label = field('Filesystem volume name') ?? '';
  return {
    label: label === '<none>' ? '' : label,
    uuid: field('Filesystem UUID') ?? '',
    features: parseFeatures(text),
    blockSize: number('Block size'),
    blockCount: number('Block count'),
    freeBlocks: number('Free blocks'),
    state: field('Filesystem state'),
  };
}

/** The "Supported features:" line of `debugfs -R supported_features`: what this host's libext2fs can work with. */
export function parseSupportedFeatures(debugfs: string): Set<string> {
  const line = /^Supported features:\s*(.*)$/m.exec(debugfs)?.[1];
  if (line === undefined) throw new UserError(`debugfs -R supported_features printed no "Supported features" line:\n${debugfs.trim()}`);
  return new Set(line.trim().split(/\s+/));
}

export interface HostExt4 {
  /** e2fsprogs version, e.g. 1.47.0. */
  version: string;
  supported: Set<string>;
}

export async function hostExt4(log?: BuildLog): Promise<HostExt4> {
  const result = await run('debugfs', ['-R', 'supported_features'], { log, what: "ask this host's e2fsprogs which ext4 features it supports" });
  const all = `${result.stdout}\n${result.stderr}`;
  return { version: /debugfs (\d[\w.~+-]*)/.exec(all)?.[1] ?? 'unknown', supported: parseSupportedFeatures(all) };
}

/** The root filesystem's features; -f so a dumpe2fs that does not know one still prints it (as FEATURE_…). */
export async function readFeatures(target: string, log?: BuildLog): Promise<string[]> {
  const { stdout } = await run('dumpe2fs', ['-f', '-h', target], { log, what: "read the root filesystem's features" });
  return parseFeatures(stdout);
}

/** The sentence that says what to do, or undefined if the host handles every feature. */
export function unsupportedFeaturesProblem(features: readonly string[], host: HostExt4): string | undefined {
  const missing = features.filter((f) => !host.supported.has(f));
  if (!missing.length) return undefined;
  const described = missing.map((f) => {
    const known = NEWER_FEATURES.find((n) => n.name === f || n.flag === f);
    return known ? `${known.name} (e2fsprogs ${known.since} or newer)` : f;
  });
  return (
    `the base image's root filesystem uses ext4 features this machine's e2fsprogs ${host.version} does not support: ${described.join(', ')}. ` +
    'e2fsck, resize2fs, mke2fs and debugfs would refuse it. Install e2fsprogs 1.47 or newer (Debian 12 and 13 and Ubuntu 24.04 have it; ' +
    "Ubuntu 22.04's 1.46.5 is too old), or build on such a machine, then build again."
  );
}

/** prepare: refuse, with what to install, a base whose root filesystem the host's e2fsprogs cannot check or resize. */
export async function checkHostHandlesRoot(target: string, options: { log?: BuildLog; host?: HostExt4 } = {}): Promise<void> {
  const host = options.host ?? (await hostExt4(options.log));
  const problem = unsupportedFeaturesProblem(await readFeatures(target, options.log), host);
  if (problem) throw new UserError(problem);
}

/** debugfs pipes `stat` through a pager when it thinks someone is reading. */
const NO_PAGER = { DEBUGFS_PAGER: '__none__', PAGER: '__none__' };

export type Ext4Entry = { kind: 'absent' } | { kind: 'file'; content: string; mode: number } | { kind: 'symlink'; target: string } | { kind: 'other'; type: string };

/** One path of the filesystem, not following a symlink at the end (debugfs's namei does not). */
export async function readExt4Entry(target: string, path: string, log?: BuildLog): Promise<Ext4Entry> {
  const stat = await run('debugfs', ['-R', `stat ${path}`, target], { log, env: NO_PAGER, what: `look up ${path} in the root filesystem` });
  if (/File not found by ext2_lookup/.test(stat.stderr)) return { kind: 'absent' };
  const type = /Type: (\S+)/.exec(stat.stdout)?.[1] ?? 'unknown';
  if (type === 'symlink') return { kind: 'symlink', target: /link dest: "(.*)"/.exec(stat.stdout)?.[1] ?? '' };
  if (type !== 'regular') return { kind: 'other', type };
  const cat = await run('debugfs', ['-R', `cat ${path}`, target], { log, env: NO_PAGER, what: `read ${path} from the root filesystem` });
  return { kind: 'file', content: cat.stdout, mode: parseInt(/Mode:\s+(\d+)/.exec(stat.stdout)?.[1] ?? '644', 8) };
}
