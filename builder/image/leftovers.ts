import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { detach, listLoops } from './loop.ts';
import { mountsUnder, unmount } from './mounts.ts';
import { isAlive, killProcessesRootedUnder } from './processes.ts';

/**
 * What a build killed hard (SIGKILL, power loss of the build host, OOM) leaves behind: processes still chrooted
 * into its image, mounts under its work directory, loop devices on files in the cache, the work directory.
 * Builds write their pid to `<work>/owner.pid`; only directories whose owner is gone are touched.
 */

export interface Leftovers {
  workDirs: string[];
  mounts: string[];
  loops: Array<{ device: string; backingFile: string }>;
}

export const OWNER_FILE = 'owner.pid';

async function staleWorkDirs(workRoot: string): Promise<string[]> {
  const entries = await readdir(workRoot).catch(() => [] as string[]);
  const stale: string[] = [];
  for (const name of entries) {
    const dir = join(workRoot, name);
    const pid = Number((await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => '')).trim());
    if (!pid || !isAlive(pid)) stale.push(dir);
  }
  return stale;
}

export async function findLeftovers(cacheRoot: string, log?: BuildLog): Promise<Leftovers> {
  const workDirs = await staleWorkDirs(join(cacheRoot, 'work'));
  const mounts = (await Promise.all(workDirs.map((dir) => mountsUnder(dir)))).flat();
  const staleFiles = (file: string) => workDirs.some((dir) => file.startsWith(`${dir}/`));
  const loops = (await listLoops(log)).filter((l) => staleFiles(l.backingFile));
  return { workDirs, mounts, loops };
}

/**
 * Release everything a dead build left: kill its chrooted processes, unmount (deepest first), detach its loop
 * devices, then delete its work directory, but only once nothing is mounted below it any more: a recursive
 * delete through a leftover bind mount of /dev would destroy the host's.
 */
export async function releaseLeftovers(cacheRoot: string, log?: BuildLog): Promise<Leftovers> {
  const found = await findLeftovers(cacheRoot, log);
  for (const dir of found.workDirs) {
    await killProcessesRootedUnder(dir);
    for (const target of await mountsUnder(dir)) await unmount(target, log, dir);
  }
  for (const loop of found.loops) await detach(loop.device, log);
  for (const dir of found.workDirs) {
    const still = await mountsUnder(dir);
    if (still.length) {
      log?.info(`not deleting ${dir}: still mounted: ${still.join(', ')}`);
      continue;
    }
    await run('rm', ['-rf', '--one-file-system', dir], { log, what: `delete ${dir}` });
  }
  return found;
}

