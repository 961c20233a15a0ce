import { z } from 'zod';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import type { Resources } from '../resources.ts';
import type { Partition } from './partitions.ts';

export interface LoopDevice {
  device: string;
  release: () => Promise<void>;
}

/**
 * Map one partition of an image file to its own loop device. `losetup -P` cannot be used: without udev no
 * /dev/loopNpM nodes appear, so each partition gets a device limited to its byte range. `readOnly` makes the
 * kernel refuse every write to the device (for inspecting an image that must not change).
 */
export async function attachPartition(
  image: string,
  partition: Partition,
  resources: Resources,
  log?: BuildLog,
  options: { readOnly?: boolean } = {},
): Promise<LoopDevice> {
  const { stdout } = await run(
    'losetup',
    [
      '--find',
      '--show',
      ...(options.readOnly ? ['--read-only'] : []),
      '--offset',
      String(partition.start * 512),
      '--sizelimit',
      String(partition.size * 512),
      image,
    ],
    { log, what: `attach partition ${partition.number} of ${image} to a loop device` },
  );
  const device = stdout.trim();
  const release = resources.hold(`loop device ${device} (${image} partition ${partition.number})`, () => detach(device, log));
  return { device, release };
}

export async function detach(device: string, log?: BuildLog): Promise<void> {
  const result = await run('losetup', ['--detach', device], { log, allowFailure: true });
  // ENXIO: already detached (autoclear after a lazy unmount); anything else is worth a message.
  if (result.exitCode !== 0 && !/No such device/.test(result.stderr)) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await run('losetup', ['--detach', device], { log, what: `detach ${device}` });
  }
}

const losetupJson = z.object({
  loopdevices: z.array(z.object({ name: z.string(), 'back-file': z.string().nullable().optional() })).default([]),
});

export interface LoopInfo {
  device: string;
  backingFile: string;
}

export function parseLoopList(json: string): LoopInfo[] {
  if (!json.trim()) return [];
  return losetupJson.parse(JSON.parse(json)).loopdevices.map((l) => ({
    device: l.name,
    backingFile: (l['back-file'] ?? '').replace(/ \(deleted\)$/, ''),
  }));
}

/**
 * Wait until no loop device is backed by `file` any more. Unmounting removes a mount from this process's mount
 * namespace only: a process that made a namespace of its own while it was mounted (unshare, mmdebstrap, a
 * container, another build on the machine) holds a copy, and a lazy unmount leaves it to whoever still has it open.
 * The filesystem then stays alive, the loop device with it (`losetup --detach` only marks it autoclear), and the
 * kernel writes its superblock when the last copy goes: seen here 46 s later, after which a filesystem resize2fs
 * had shrunk meanwhile came back with its old size, past the end of the image. Refuses after `timeoutMs` instead.
 */
export async function waitForLoopsReleased(file: string, what: string, log?: BuildLog, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = (await listLoops(log)).filter((l) => l.backingFile === file);
    if (!held.length) return;
    if (Date.now() > deadline) {
      throw new UserError(
        `${what}: ${held.map((l) => l.device).join(', ')} still use ${file} ${Math.round(timeoutMs / 1000)} s after it was unmounted ` +
          '(a process, or another mount namespace made while it was mounted, keeps the filesystem alive); refusing to go on, since the kernel ' +
          'would write the filesystem back over what comes next. ' +
          `Find what holds it with \`grep -l ${held[0]?.device} /proc/*/mountinfo\`` +
          ' (other builds or containers on this machine), let it finish or stop it, run `simplex-pi doctor`, then build again.',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export async function listLoops(log?: BuildLog): Promise<LoopInfo[]> {
  const { stdout } = await run('losetup', ['--json', '--list'], { log, what: 'list loop devices' });
  return parseLoopList(stdout);
}
