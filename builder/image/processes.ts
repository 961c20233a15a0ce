import { readdir, readlink } from 'node:fs/promises';

/** Processes whose root directory is `root` or inside it: what keeps a chroot's mounts busy after a crash. */
export async function processesRootedUnder(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const target = await readlink(`/proc/${entry}/root`);
      if (target === root || target.startsWith(`${root}/`)) pids.push(Number(entry));
    } catch {
      // The process ended, or is not ours to inspect.
    }
  }
  return pids;
}

export async function killProcessesRootedUnder(root: string): Promise<number[]> {
  const pids = await processesRootedUnder(root);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (pids.length) await new Promise((resolve) => setTimeout(resolve, 300));
  return pids;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
