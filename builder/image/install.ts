import { chmod, chown, lstat, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import { inImageTemporary } from '../temporary-names.ts';
import type { ImageEntry } from '../render/render.ts';

/** The image's own users and groups, by name, for the owners of what is installed. */
export interface IdMaps {
  uid: (name: string) => number;
  gid: (name: string) => number;
}

/** Name -> id from an image's /etc/passwd and /etc/group. */
export async function imageIds(root: string): Promise<IdMaps> {
  const table = async (file: string) =>
    new Map(
      (await readFile(join(root, file), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(':'))
        .map((f) => [f[0]!, Number(f[2])] as const),
    );
  const users = await table('etc/passwd');
  const groups = await table('etc/group');
  const lookup = (map: Map<string, number>, kind: string) => (name: string) => {
    const id = map.get(name);
    if (id === undefined) throw new UserError(`the image has no ${kind} "${name}"`);
    return id;
  };
  return { uid: lookup(users, 'user'), gid: lookup(groups, 'group') };
}

/**
 * Write entries under `root`. Files are written atomically; existing directories keep their mode unless the
 * entry is for that directory itself; `ids` (the image's own users) sets owners, or nothing is chowned (render).
 */
export async function writeEntries(root: string, entries: readonly ImageEntry[], ids?: IdMaps): Promise<void> {
  for (const entry of entries) {
    const target = join(root, entry.path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    if (entry.kind === 'dir') {
      await mkdir(target, { recursive: true });
      await chmod(target, entry.mode);
      if (ids) await chown(target, ids.uid(entry.owner), ids.gid(entry.group));
      continue;
    }
    const temporary = inImageTemporary(target);
    if (entry.kind === 'symlink') {
      await rm(temporary, { force: true });
      await symlink(entry.target!, temporary);
    } else {
      await writeFile(temporary, entry.content!, { mode: entry.mode });
      await chmod(temporary, entry.mode);
    }
    if (ids) await chown(temporary, ids.uid(entry.owner), ids.gid(entry.group)).catch(async (error) => {
      if (entry.kind !== 'symlink') throw error;
    });
    const existing = await lstat(target).catch(() => undefined);
    if (existing?.isDirectory()) throw new UserError(`cannot write ${entry.path}: a directory is in the way`);
    await rename(temporary, target);
  }
}
