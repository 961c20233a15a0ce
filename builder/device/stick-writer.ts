import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { diskSequence, probeFilesystem } from './usb-sticks.ts';
import { runTool } from './tool.ts';

/** A file for the stick, by its path inside the stick's folder (`qr/smp1.png`). */
export interface StickFile {
  path: string;
  content: string | Buffer;
}

/** The stick is not the one that was checked, or not one to write: nothing more is written to it. */
export class StickRefused extends Error {}

/**
 * Where the files are laid out before mtools copies them: a directory on tmpfs, never the SD card, whose flash
 * keeps what was deleted (security review L11). The export unit's RuntimeDirectory; /run for root's own
 * `simplex-pi export`.
 */
function scratchParent(): string {
  return process.env.RUNTIME_DIRECTORY?.split(':')[0] || '/run';
}

/**
 * Write files into `folder` on a FAT stick without mounting it, so nothing on the stick is ever executed, opened
 * as a device of its own or followed as a link, and a stick pulled out leaves no mount behind.
 *
 * The label is checked on the device that is written (security review L1): the disk's sequence number is read
 * before and after the label is probed, and everything is written by ONE mtools run, which opens the device once.
 * A stick swapped for another under the same name during the check changes the sequence number and gets nothing;
 * one swapped after mtools has opened the device cannot be written through that open file; and between the check
 * and that open (a process start, milliseconds) no new stick can appear: USB storage is registered no sooner than
 * usb-storage's delay_use (1 s) after it is plugged in. mtools runs with its own consistency checks on.
 */
export async function writeToStick(device: string, label: string, folder: string, files: readonly StickFile[]): Promise<void> {
  const before = await diskSequence(device);
  const found = await probeFilesystem(device);
  if (found.label !== label) throw new StickRefused(`${device} is labelled "${found.label}", not ${label}: not writing to it`);
  if (found.type !== 'vfat') throw new StickRefused(`${device} is ${found.type || 'not a filesystem'}, not FAT: not writing to it`);
  const scratch = await mkdtemp(join(scratchParent(), 'simplex-pi-export-'));
  try {
    const top = join(scratch, folder);
    for (const file of files) {
      const local = join(top, file.path);
      await mkdir(dirname(local), { recursive: true, mode: 0o700 });
      await writeFile(local, file.content, { mode: 0o600 });
    }
    if ((await diskSequence(device)) !== before) throw new StickRefused(`${device} was replaced while it was checked: nothing was written`);
    // -s: the folder and everything in it; -o: files of an earlier export are replaced; -Q: stop at the first error.
    await runTool('mcopy', ['-s', '-o', '-Q', '-i', device, top, '::/'], { timeoutMs: 120_000 });
    // mtools' last close of the device flushes it (the kernel syncs a block device on its last close).
    if ((await diskSequence(device)) !== before) throw new Error(`${device} was removed or replaced during the export: its files may be incomplete; plug it in again`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
