import { readFile, statfs, stat } from 'node:fs/promises';
import { run } from './exec.ts';
import { binfmtProblem } from './image/binfmt.ts';
import { type Leftovers, findLeftovers, releaseLeftovers } from './image/leftovers.ts';
import { messageOf } from './errors.ts';
// The node and tools checks live in plain JavaScript so that bin/simplex-pi.mjs can run them on a Node.js too
// old for the rest of simplex-pi; the table of tools is builder/host-requirements.txt, shared with setup-host.sh.
import { type Check, nodeCheck, toolsCheck } from './host-check.mjs';

export type { Check };

export const MIN_FREE_GIB = 8;

export async function checkHost(cacheRoot: string): Promise<Check[]> {
  const checks: Check[] = [];
  const root = process.getuid?.() === 0;
  checks.push({ name: 'root', ok: root, detail: root ? 'running as root' : 'building needs root (loop devices, mounts, chroot): run with sudo' });

  checks.push(nodeCheck());
  checks.push(toolsCheck());

  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  const ext4 = /\bext4\b/.test(filesystems);
  checks.push({
    name: 'ext4',
    ok: ext4,
    detail: ext4 ? 'the kernel mounts ext4 (the image\'s root filesystem)' : 'this kernel cannot mount ext4: load the module (`modprobe ext4`) or build on another machine',
  });

  const binfmt = await binfmtProblem();
  checks.push({ name: 'binfmt', ok: !binfmt, detail: binfmt ?? 'qemu-aarch64 registered with the F flag: arm64 programs run in the chroot' });

  let loopDetail = 'loop devices available';
  let loopOk = true;
  try {
    await stat('/dev/loop-control');
    const free = await run('losetup', ['--find'], { allowFailure: true });
    if (free.exitCode !== 0) [loopOk, loopDetail] = [false, `no free loop device (${free.stderr.trim()}): \`simplex-pi doctor\` releases leftovers; \`losetup -l\` lists them`];
  } catch {
    [loopOk, loopDetail] = [false, '/dev/loop-control is missing: load the loop module (`modprobe loop`) or, in a container, give it access to loop devices'];
  }
  checks.push({ name: 'loop', ok: loopOk, detail: loopDetail });

  try {
    const fs = await statfs(await existingParent(cacheRoot));
    const freeGiB = (fs.bavail * fs.bsize) / 1024 ** 3;
    checks.push({
      name: 'disk',
      ok: freeGiB >= MIN_FREE_GIB,
      detail: `${freeGiB.toFixed(1)} GiB free for the cache at ${cacheRoot}${freeGiB < MIN_FREE_GIB ? `; a build needs about ${MIN_FREE_GIB} GiB: free some space or pass --cache DIR` : ''}`,
    });
  } catch (error) {
    checks.push({ name: 'disk', ok: false, detail: `cannot measure free space at ${cacheRoot}: ${messageOf(error)}` });
  }
  return checks;
}

async function existingParent(path: string): Promise<string> {
  let current = path;
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch {
      const parent = current.replace(/\/[^/]*$/, '') || '/';
      if (parent === current) return '/';
      current = parent;
    }
  }
}

export async function doctor(cacheRoot: string): Promise<{ checks: Check[]; released: Leftovers }> {
  // Only root can unmount and detach; anyone can look.
  const released = process.getuid?.() === 0 ? await releaseLeftovers(cacheRoot) : await findLeftovers(cacheRoot);
  return { checks: await checkHost(cacheRoot), released };
}
