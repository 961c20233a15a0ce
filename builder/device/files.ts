import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

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

/** Flush a directory, so a rename or removal in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  fsyncDir(dir);
}

const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * A directory itself, never what a symbolic link in its place points to, on the way to it either. The directories
 * first boot writes into belong to Tor's user and the relay user, who can put a link where one of theirs was
 * (their own directory, or one inside it); root following it would create, chmod, chown or write whatever it
 * points to (the recovery path, `systemctl restart` of first boot, runs while their services run). So the path is
 * opened one name at a time from /, each inside the directory opened before it (through /proc/self/fd), none of
 * them a link. `create`: make a directory that is missing, with this mode.
 */
async function openDirectory(path: string, create?: number): Promise<FileHandle> {
  let handle = await open('/', DIRECTORY);
  let walked = '';
  try {
    for (const name of resolve(path).split('/').filter(Boolean)) {
      walked += `/${name}`;
      const inside = `/proc/self/fd/${handle.fd}/${name}`;
      const next = await open(inside, DIRECTORY).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT' || create === undefined) throw error;
        await mkdir(inside, { mode: create }).catch((made: NodeJS.ErrnoException) => {
          if (made.code !== 'EEXIST') throw made;
        });
        return open(inside, DIRECTORY);
      });
      await handle.close();
      handle = next;
    }
    return handle;
  } catch (error) {
    await handle.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ELOOP' && code !== 'ENOTDIR') {
      if (error instanceof Error) error.message = error.message.replace(/\/proc\/self\/fd\/\d+\/[^'\s]*/, walked);
      throw error;
    }
    const link = (await lstat(walked).catch(() => undefined))?.isSymbolicLink();
    throw new Error(
      `${walked} is ${link ? 'a symbolic link' : 'not a directory'} where a directory should be. simplex-pi never puts one there, so it ` +
        'stops rather than follow it and change what it points to: look at it, move it away, and run first boot again.',
    );
  }
}

/**
 * Write a file so that after a power cut it is either the old file or the new one, never a part: write a
 * temporary file beside it, set owner and mode on it, flush it, rename it over, flush the directory. Every step
 * happens in the directory as it was opened (through /proc/self/fd), and owner and mode are set on the open file:
 * a symbolic link put in place of the directory, the file or the temporary file is never followed.
 */
export async function atomicWrite(path: string, data: string | Buffer, mode: number, owner?: Owner): Promise<void> {
  const directory = await openDirectory(dirname(path));
  const inside = `/proc/self/fd/${directory.fd}/`;
  const name = basename(path);
  try {
    await rm(`${inside}${name}.new`, { force: true });
    const handle = await open(`${inside}${name}.new`, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(`${inside}${name}.new`, `${inside}${name}`);
    await directory.sync();
  } catch (error) {
    // The path people know, not the descriptor's.
    if (error instanceof Error) error.message = error.message.replaceAll(inside, `${dirname(path)}/`);
    throw error;
  } finally {
    await directory.close();
  }
}

/**
 * Flush every file in a directory tree and the directories themselves. Programs such as `smp-server init` write
 * their files without fsync: after a power cut they can be there, but empty. Flushing before the step counts as
 * done is what makes "done" true after a cut. The relay user owns these trees: a link or a named pipe put in
 * place of a file is an error, never followed or waited on.
 */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(path);
    else if (entry.isFile()) {
      const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  }
  fsyncDir(dir);
}

/**
 * A directory with exactly this owner and mode (Tor refuses a hidden-service directory with any group or other
 * bits), made where missing (its missing parents too, with the same mode), owner and mode set on the directory as
 * opened: a symbolic link in its place or on the way to it is refused, never followed.
 */
export async function ensureDir(path: string, mode: number, owner?: Owner): Promise<void> {
  const handle = await openDirectory(path, mode);
  try {
    await handle.chmod(mode);
    if (owner) await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}
