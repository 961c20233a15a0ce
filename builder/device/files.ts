import { closeSync, fsyncSync, openSync } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Owner for files the device program writes: Tor's and the relays' files must belong to them. */
export interface Owner {
  uid: number;
  gid: number;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Write a file so that after a power cut it is either the old file or the new one, never a part: write a
 * temporary file beside it, flush it, set owner and mode, rename it over, flush the directory.
 */
export async function atomicWrite(path: string, data: string | Buffer, mode: number, owner?: Owner): Promise<void> {
  const temporary = `${path}.new`;
  await rm(temporary, { force: true });
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(temporary, mode);
  if (owner) await chown(temporary, owner.uid, owner.gid);
  await rename(temporary, path);
  fsyncDir(dirname(path));
}

/**
 * Flush every file in a directory tree and the directories themselves. Programs such as `smp-server init` write
 * their files without fsync: after a power cut they can be there, but empty. Flushing before the step counts as
 * done is what makes "done" true after a cut.
 */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(path);
    else if (entry.isFile()) {
      const handle = await open(path, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  }
  fsyncDir(dir);
}

/** A directory with exactly this owner and mode (Tor refuses a hidden-service directory with any group or other bits). */
export async function ensureDir(path: string, mode: number, owner?: Owner): Promise<void> {
  await mkdir(path, { recursive: true, mode });
  await chmod(path, mode);
  if (owner) await chown(path, owner.uid, owner.gid);
}
