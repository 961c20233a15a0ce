import { readFile } from 'node:fs/promises';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { killProcessesRootedUnder } from './processes.ts';

/** Decode the octal escapes (\040 for space) the kernel uses in /proc/self/mountinfo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points, in the order the kernel lists them (parents before children). */
export function parseMountinfo(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter(Boolean);
}

export async function mountPoints(): Promise<string[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** Mount points at or below `dir`, deepest first: the order they must be unmounted in. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const all = await mountPoints();
  return [...new Set(all.filter((m) => m === dir || m.startsWith(`${dir}/`)))].sort((a, b) => b.length - a.length);
}

export async function mount(args: string[], log?: BuildLog): Promise<void> {
  await run('mount', args, { log, what: 'mount a filesystem of the image' });
}

/**
 * Unmount one mount point. If it is busy, whatever still runs chrooted below `chrootRoot` is killed first; as a
 * last resort the mount is detached lazily so the loop device can still be released.
 */
export async function unmount(target: string, log?: BuildLog, chrootRoot?: string): Promise<void> {
  if (!(await mountPoints()).includes(target)) return;
  const first = await run('umount', [target], { log, allowFailure: true });
  if (first.exitCode === 0) return;
  if (chrootRoot) await killProcessesRootedUnder(chrootRoot);
  const second = await run('umount', [target], { log, allowFailure: true });
  if (second.exitCode === 0) return;
  await run('umount', ['--lazy', target], { log, what: `unmount ${target}` });
}

/** Unmount everything at or below `dir`, deepest first. */
export async function unmountAll(dir: string, log?: BuildLog): Promise<void> {
  await killProcessesRootedUnder(dir);
  for (const target of await mountsUnder(dir)) await unmount(target, log, dir);
}
