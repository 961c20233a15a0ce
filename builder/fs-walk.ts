import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** One entry met by `walk`. */
export interface WalkEntry {
  /** The entry's path on this host (root joined with `path`). */
  full: string;
  /** Path relative to the walk's root, with forward slashes and no leading one, e.g. `etc/ssh/sshd_config`. */
  path: string;
  dirent: Dirent;
}

export interface WalkOptions {
  /**
   * Meet each directory's entries in name order, so anything derived from the walk (a digest, a list) is the same
   * on every run. Otherwise readdir's order, which is cheaper.
   */
  sorted?: boolean;
  /**
   * Skip a directory that cannot be read (absent, removed meanwhile, no permission) instead of failing the walk:
   * for scans of a mounted image tree, where one unreadable corner must not stop the rest.
   */
  skipUnreadable?: boolean;
}

/**
 * Visit every entry below `root`, depth first, each directory before what is in it. `visit` returns false for a
 * directory it does not want entered (it may have removed it); symbolic links are never followed. `root` itself
 * is not visited.
 */
export async function walk(root: string, visit: (entry: WalkEntry) => Promise<boolean | void> | boolean | void, options: WalkOptions = {}): Promise<void> {
  const descend = async (dir: string, prefix: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (options.skipUnreadable) return;
      throw error;
    }
    if (options.sorted) entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const dirent of entries) {
      const entry = { full: join(dir, dirent.name), path: prefix ? `${prefix}/${dirent.name}` : dirent.name, dirent };
      const enter = await visit(entry);
      if (dirent.isDirectory() && enter !== false) await descend(entry.full, entry.path);
    }
  };
  await descend(root, '');
}
