import { readFile, lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { walk } from '../fs-walk.ts';
import { sha256Text } from '../hash.ts';

export interface TreeFile {
  /** Path relative to the tree's root, with forward slashes. */
  path: string;
  mode: number;
  kind: 'file' | 'dir' | 'symlink';
}

/** Every entry of a directory tree, sorted, so the order (and any digest of it) is stable. */
export async function walkTree(root: string): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  // Strict (an unreadable directory fails): a digest of a tree the walk could not fully read would be wrong.
  await walk(
    root,
    async ({ full, path, dirent: entry }) => {
      const info = await lstat(full);
      if (entry.isDirectory()) out.push({ path, mode: info.mode & 0o7777, kind: 'dir' });
      else if (entry.isSymbolicLink()) out.push({ path, mode: 0o777, kind: 'symlink' });
      else if (entry.isFile()) out.push({ path, mode: info.mode & 0o7777, kind: 'file' });
    },
    { sorted: true },
  );
  return out;
}

/** A digest of a tree's names, modes and contents: part of the cache key of whatever is built from it. */
export async function treeDigest(root: string): Promise<Array<[string, number, string]>> {
  const entries = await walkTree(root);
  return Promise.all(
    entries.map(async (e): Promise<[string, number, string]> => [
      e.path,
      e.mode,
      e.kind === 'file' ? sha256Text(await readFile(join(root, e.path))) : e.kind === 'symlink' ? await readlink(join(root, e.path)) : '',
    ]),
  );
}
