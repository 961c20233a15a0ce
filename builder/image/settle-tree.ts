import { lstat, lutimes } from 'node:fs/promises';
import { walk } from '../fs-walk.ts';

/**
 * The last step on the finished tree before its root filesystem is made anew (recreate-root.ts): every file's
 * time clamped to SOURCE_DATE_EPOCH, and what the new filesystem must hold, counted from the tree itself.
 *
 * Clamped, not set: a file older than the epoch (most of the base's and the packages' files, dated by their own
 * builds) keeps its time; one the build wrote (today's date) gets the epoch. Access times become the clamped
 * modification time, so reading the tree does not change the image. Change times cannot be set from user space;
 * recreate-root sets them in the new filesystem.
 */

/** What the new root filesystem must hold, counted so that the same tree always gives the same figures. */
export interface TreeCount {
  /** Inodes: every file, directory, link and device once, however many names it has. */
  inodes: number;
  /** Bytes of data blocks: files and long symbolic links rounded up to `blockSize`, directories from their entries. */
  dataBytes: number;
}

/** ext4 keeps a symbolic link's target inside its inode up to this length; longer ones take a block. */
const INLINE_SYMLINK_MAX = 59;

/**
 * A directory's size in its blocks, from its names: the work filesystem's own directory sizes depend on what was
 * ever created and removed in it (ext4 never shrinks a directory), which would make the estimate, and so the image
 * size, differ between two builds of the same tree.
 */
export function directoryBytes(names: readonly string[], blockSize: number): number {
  // ext4_dir_entry_2: 8 bytes and the name, padded to 4; "." and ".." are 12 each; a checksum tail of 12 a block.
  const entries = 24 + names.reduce((sum, name) => sum + 8 + Math.ceil(Buffer.byteLength(name) / 4) * 4, 0);
  const perBlock = blockSize - 12;
  return Math.max(1, Math.ceil(entries / perBlock)) * blockSize;
}

const NS = 1_000_000_000n;

function roundUp(bytes: number, blockSize: number): number {
  return Math.ceil(bytes / blockSize) * blockSize;
}

/**
 * Clamp every time under `root` (the tree, `root` itself included) to `epoch` and count what it holds. Symbolic
 * links' own times are set, never their targets'.
 */
export async function settleTree(root: string, epoch: number, blockSize: number): Promise<TreeCount> {
  const seen = new Set<string>();
  const count: TreeCount = { inodes: 0, dataBytes: 0 };
  const names = new Map<string, string[]>();
  // Reading a directory sets its access time (relatime, since it is not after its modification time): directories
  // get their times once the walk has read every one of them.
  const directories: Array<{ path: string; time: number }> = [];
  const settle = async (full: string, dir: string | undefined, name: string | undefined) => {
    const info = await lstat(full, { bigint: true });
    if (dir !== undefined && name !== undefined) names.get(dir)?.push(name);
    const time = Math.min(Number(info.mtimeNs / NS), epoch);
    const wanted = BigInt(time) * NS;
    if (info.isDirectory()) directories.push({ path: full, time });
    else if (info.atimeNs !== wanted || info.mtimeNs !== wanted) await lutimes(full, time, time);
    const key = `${info.dev}:${info.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    count.inodes += 1;
    if (info.isDirectory()) names.set(full, []);
    else if (info.isFile()) count.dataBytes += roundUp(Number(info.size), blockSize);
    else if (info.isSymbolicLink() && info.size > INLINE_SYMLINK_MAX) count.dataBytes += blockSize;
  };
  await settle(root, undefined, undefined);
  await walk(root, ({ full, dirent }) => settle(full, full.slice(0, full.length - dirent.name.length - 1), dirent.name));
  for (const { path, time } of directories) await lutimes(path, time, time);
  for (const entries of names.values()) count.dataBytes += directoryBytes(entries, blockSize);
  return count;
}
