import { mkdir, open, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { Resources } from '../resources.ts';
import { dumpe2fsField, ext4Target, parseDumpe2fs } from './ext4.ts';
import { type BlockRanges, readExt4Usage } from './ext4-usage.ts';
import { attachPartition } from './loop.ts';
import { mount, unmount } from './mounts.ts';
import { raspberryPiLayout, readPartitionTable } from './partitions.ts';
import type { TreeCount } from './settle-tree.ts';

/**
 * The root filesystem of the finished image, made anew from the built tree with `mke2fs -d`, so that the same tree
 * gives the same bytes on every build (README "Reproducible images").
 *
 * The work filesystem cannot give that: the kernel writes each inode's change time as the moment it changed, block
 * placement and directory order follow the build's history, and the journal holds whatever it last logged.
 * `mke2fs -d` lays the tree out in name order with e2fsprogs' own allocator, writes nothing but what it is given,
 * and takes every filesystem-wide time from E2FSPROGS_FAKE_TIME. It copies each file's times from the tree, the
 * change time too, which user space cannot set: a debugfs pass then sets every inode's change time to the epoch.
 *
 * The new filesystem keeps what the base's has: its label, UUID and directory hash seed (fstab, cmdline.txt and the
 * base's own first-boot scripts may name them; each card's identities are made on first boot, not here), its
 * features, block and inode sizes, bytes per inode, reserved share, flex group size, journal size and hash.
 */

export interface RootParameters {
  label: string;
  uuid: string;
  hashSeed: string;
  hashAlgorithm: string;
  features: string[];
  blockSize: number;
  inodeSize: number;
  bytesPerInode: number;
  reservedPercent: number;
  flexGroupSize?: number;
  journalMiB?: number;
  mountOptions: string[];
}

/** Features that describe the filesystem's state, not its format: mke2fs would refuse them. */
const STATE_FEATURES = new Set(['needs_recovery', 'orphan_present']);

/** What the new filesystem takes over from the work image's, read from `dumpe2fs -h`. */
export function parseRootParameters(dumpe2fs: string): RootParameters {
  const common = parseDumpe2fs(dumpe2fs);
  const numberField = (name: string) => {
    const value = Number(dumpe2fsField(dumpe2fs, name) ?? undefined);
    if (!Number.isFinite(value)) throw new UserError(`dumpe2fs printed no "${name}" for the root filesystem; is it ext4?`);
    return value;
  };
  const blocks = numberField('Block count');
  const blockSize = numberField('Block size');
  const inodes = numberField('Inode count');
  const journal = /^(?:Total journal size|Journal size):\s*(\d+)([KMG])/m.exec(dumpe2fs);
  const journalMiB = journal ? (Number(journal[1]) * { K: 1 / 1024, M: 1, G: 1024 }[journal[2] as 'K' | 'M' | 'G']) : undefined;
  const flex = dumpe2fsField(dumpe2fs, 'Flex block group size');
  const options = dumpe2fsField(dumpe2fs, 'Default mount options') ?? '';
  return {
    label: common.label,
    uuid: common.uuid,
    hashSeed: dumpe2fsField(dumpe2fs, 'Directory Hash Seed') ?? '',
    hashAlgorithm: dumpe2fsField(dumpe2fs, 'Default directory hash') ?? 'half_md4',
    features: common.features.filter((f) => !STATE_FEATURES.has(f)),
    blockSize,
    inodeSize: numberField('Inode size'),
    // Rounded to a power of two's multiple of the block size, as mke2fs.conf states it (16384 on every base seen).
    bytesPerInode: Math.max(blockSize, Math.round((blocks * blockSize) / inodes / blockSize) * blockSize),
    reservedPercent: Math.round((numberField('Reserved block count') / blocks) * 1000) / 10,
    flexGroupSize: flex ? Number(flex) : undefined,
    journalMiB: journalMiB && journalMiB >= 1 ? Math.round(journalMiB) : undefined,
    mountOptions: options === '(none)' ? [] : options.split(/\s+/).filter(Boolean),
  };
}

const MiB = 1024 * 1024;

/**
 * The new filesystem's size in MiB: the tree's blocks, the inode tables for its bytes per inode, the journal, a
 * share for the group descriptors, bitmaps, extent blocks and the reserved blocks, and `marginMiB` free. From the
 * tree's own count, so the same tree always gives the same size.
 */
export function rootMiBFor(count: TreeCount, params: RootParameters, marginMiB: number): number {
  const inodeShare = params.inodeSize / params.bytesPerInode;
  const content = count.dataBytes + count.inodes * params.inodeSize;
  const withMetadata = content / (1 - inodeShare - 0.03 - params.reservedPercent / 100);
  return Math.ceil(withMetadata / MiB) + (params.journalMiB ?? 0) + marginMiB;
}

/** A mke2fs profile that states every default itself, so the host's /etc/mke2fs.conf changes nothing. */
export function mke2fsProfile(params: RootParameters): string {
  return [
    '[defaults]',
    `\thash_alg = ${params.hashAlgorithm}`,
    `\tdefault_mntopts = ${params.mountOptions.join(',') || '^acl'}`,
    '[fs_types]',
    '\text4 = {',
    `\t\tinode_size = ${params.inodeSize}`,
    '\t}',
    '',
  ].join('\n');
}

export function mke2fsArgs(params: RootParameters, options: { offsetBytes: number; sizeMiB: number; tree: string; image: string }): string[] {
  const extended = [`hash_seed=${params.hashSeed}`, 'lazy_itable_init=0', 'lazy_journal_init=0', 'root_owner=0:0', `offset=${options.offsetBytes}`];
  return [
    '-q',
    '-F',
    '-t',
    'ext4',
    // `none` first: exactly the base's features, whatever this host's mke2fs would add by default.
    '-O',
    ['none', ...params.features].join(','),
    '-b',
    String(params.blockSize),
    '-I',
    String(params.inodeSize),
    '-i',
    String(params.bytesPerInode),
    '-m',
    String(params.reservedPercent),
    ...(params.flexGroupSize ? ['-G', String(params.flexGroupSize)] : []),
    ...(params.journalMiB && params.features.includes('has_journal') ? ['-J', `size=${params.journalMiB}`] : []),
    ...(params.label ? ['-L', params.label] : []),
    '-U',
    params.uuid,
    '-E',
    extended.join(','),
    '-d',
    options.tree,
    options.image,
    `${options.sizeMiB}M`,
  ];
}

/** debugfs commands that set every used inode's change time to `epoch` (mke2fs -d copied the tree's). */
export function changeTimeCommands(usedInodes: BlockRanges, epoch: number): string {
  const lines: string[] = [];
  for (const { first, last } of usedInodes) {
    for (let inode = first; inode <= last; inode += 1) lines.push(`set_inode_field <${inode}> ctime @${epoch}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface RecreateOptions {
  /** The work image: partition 1 FAT (already final), partition 2 the built root filesystem. Replaced in place. */
  image: string;
  workDir: string;
  sourceDateEpoch: number;
  /** The settled tree's count (settle-tree.ts), for the new filesystem's size. */
  count: TreeCount;
  marginMiB: number;
  log?: BuildLog;
}

/**
 * Replace the image's root filesystem by one made anew from its own tree (see the top of this file), the partition
 * sized to it and the image cut after it. The new image is written beside the work image and renamed over it once
 * checked, so a failure leaves the work image as it was.
 */
export async function recreateRoot(options: RecreateOptions): Promise<{ rootMiB: number; params: RootParameters }> {
  const { image, workDir, log } = options;
  const layout = raspberryPiLayout(await readPartitionTable(image, log), image);
  const root = layout.root;
  const params = parseRootParameters((await run('dumpe2fs', ['-h', ext4Target(image, root)], { log, what: 'read the root filesystem' })).stdout);
  if (!params.uuid || !params.hashSeed) throw new UserError('dumpe2fs printed no UUID or directory hash seed for the root filesystem; is it ext4?');
  const sizeMiB = rootMiBFor(options.count, params, options.marginMiB);
  const offsetBytes = root.start * 512;
  const fresh = `${image}.recreated`;
  const profile = join(workDir, 'mke2fs.conf');
  await writeFile(profile, mke2fsProfile(params));
  const env = { E2FSPROGS_FAKE_TIME: String(options.sourceDateEpoch), MKE2FS_CONFIG: profile };
  try {
    // Everything before the root partition (partition table, boot partition) as it is; the rest starts as zeros.
    await copyHead(image, fresh, offsetBytes);
    await truncate(fresh, offsetBytes + sizeMiB * MiB);
    await withTreeMounted(image, root, join(workDir, 'settled-root'), log, async (tree) => {
      const made = await run('mke2fs', mke2fsArgs(params, { offsetBytes, sizeMiB, tree, image: fresh }), { log, env, allowFailure: true });
      if (made.exitCode !== 0) {
        throw new UserError(
          `mke2fs could not make the image's root filesystem from the built tree (exit ${made.exitCode}):\n${`${made.stdout}\n${made.stderr}`.trim().split('\n').slice(-6).join('\n')}\n` +
            `It was sized ${sizeMiB} MiB from the tree's own count; if it says the filesystem is full, this is a simplex-pi bug: please report it with the build log.`,
        );
      }
    });
    const target = ext4Target(fresh, { ...root, size: sizeMiB * (MiB / 512) });
    const usage = await readExt4Usage(target, log);
    const commands = join(workDir, 'change-times.debugfs');
    await writeFile(commands, changeTimeCommands(usage.usedInodes, options.sourceDateEpoch));
    await run('debugfs', ['-w', '-f', commands, target], { log, env, what: "set the root filesystem's change times" });
    const check = await run('e2fsck', ['-f', '-n', target], { log, allowFailure: true });
    if (check.exitCode !== 0) {
      throw new UserError(`the new root filesystem does not pass e2fsck (exit ${check.exitCode}); nothing was written:\n${check.stdout.trim().split('\n').slice(-8).join('\n')}`);
    }
    await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', String(root.number), fresh], {
      log,
      input: `${root.start}, ${sizeMiB * (MiB / 512)}\n`,
      what: 'size the root partition to the new filesystem',
    });
    await rename(fresh, image);
    return { rootMiB: sizeMiB, params };
  } finally {
    await rm(fresh, { force: true });
  }
}

/** Copy the first `bytes` of `from` into a new file `to`, leaving holes where `from` has zeros. */
async function copyHead(from: string, to: string, bytes: number): Promise<void> {
  const source = await open(from, 'r');
  const target = await open(to, 'w');
  try {
    const buffer = Buffer.alloc(4 * MiB);
    const zeros = Buffer.alloc(buffer.length);
    for (let at = 0; at < bytes; at += buffer.length) {
      const length = Math.min(buffer.length, bytes - at);
      const { bytesRead } = await source.read(buffer, 0, length, at);
      const part = buffer.subarray(0, bytesRead);
      // equals() is a memcmp; a byte-by-byte test in JavaScript took seconds for the boot partition.
      if (!part.equals(zeros.subarray(0, bytesRead))) await target.write(part, 0, part.length, at);
      if (bytesRead < length) break;
    }
    await target.truncate(bytes);
  } finally {
    await source.close();
    await target.close();
  }
}

/** Mount the image's root partition read-only, without access times, for `mke2fs -d`; unmounted afterwards. */
async function withTreeMounted<T>(image: string, root: Parameters<typeof attachPartition>[1], at: string, log: BuildLog | undefined, fn: (tree: string) => Promise<T>): Promise<T> {
  const resources = new Resources(log);
  try {
    const loop = await attachPartition(image, root, resources, log, { readOnly: true });
    await mkdir(at, { recursive: true });
    await mount(['-t', 'ext4', '-o', 'ro,noatime,noload', loop.device, at], log);
    resources.hold(`mount ${at}`, () => unmount(at, log));
    return await fn(at);
  } finally {
    await resources.releaseAll();
  }
}
