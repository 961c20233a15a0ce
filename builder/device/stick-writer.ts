import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type BlockDevice, describeDevice, diskSequence, isUsb, labelledDevices, probeFilesystem } from './usb-sticks.ts';
import { runTool } from './tool.ts';

/** A file for the stick, by its path inside the stick's folder (`qr/smp1.png`). */
export interface StickFile {
  path: string;
  content: string | Buffer;
}

/** The stick is not the one that was checked, or not one to write: nothing was written to it. */
export class StickRefused extends Error {}

/** What the caller saw of the stick when it chose it (udev's listing): the stick written must still be that one. */
export interface ExpectedStick {
  diskseq?: string | undefined;
  fsUuid?: string | undefined;
}

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
 * The label is checked on the device that is written (security review L1). The disk's sequence number (which
 * changes whenever another medium appears under a device name) must be the one udev listed when the caller chose
 * the stick, and the same before the label is probed and just before the write; the filesystem's volume id must
 * be the listed one; and everything is written by ONE mtools run, which opens the device once. So a stick swapped
 * for another under the same name (sda1 again) at any point before that open gets nothing, and one swapped after
 * it cannot be written through that open file. Between the last check and the open (a process start,
 * milliseconds) a new stick cannot finish registering. A kernel that keeps no sequence numbers (before Linux 5.15)
 * gets no export at all: the check would be blind. mtools runs with its own checks on.
 */
export async function writeToStick(device: string, label: string, folder: string, files: readonly StickFile[], expected: ExpectedStick = {}): Promise<void> {
  const before = await diskSequence(device);
  if (before === undefined) throw new StickRefused(`${device}: the kernel keeps no disk sequence number for it, so a swapped stick could not be told apart: not writing to it`);
  if (expected.diskseq !== undefined && expected.diskseq !== before) throw new StickRefused(`${device} is not the stick that was chosen (it was replaced since): not writing to it`);
  const found = await probeFilesystem(device);
  if (found.label !== label) throw new StickRefused(`${device} is labelled "${found.label}", not ${label}: not writing to it`);
  if (found.type !== 'vfat') throw new StickRefused(`${device} is ${found.type || 'not a filesystem'}, not FAT: not writing to it`);
  if (expected.fsUuid !== undefined && expected.fsUuid !== found.uuid) throw new StickRefused(`${device} is not the stick that was chosen (another filesystem): not writing to it`);
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

/** The files and folders of an export in the clear (export-files.ts): addresses, QR codes, client keys, the admin's. */
const SECRET_PATHS = /^(addresses\.txt|servers\.json|qr\/|client-auth\/|admin\/)/;

/**
 * Whether the stick's folder already holds secret files from an earlier export in the clear: a stick that now
 * gets only the health report must not be told it holds no secret. Read with mtools, like the write.
 */
export async function folderHoldsSecrets(device: string, folder: string): Promise<boolean> {
  const { stdout } = await runTool('mdir', ['-/', '-b', '-i', device, `::/${folder}`], { timeoutMs: 60_000 }).catch(() => ({ stdout: '' }));
  return stdout.split('\n').some((path) => SECRET_PATHS.test(path.replace(`::/${folder}/`, '')));
}

/**
 * The stick root asked for (`export`, `backup`): the one named with --device, which must be USB storage, or else
 * the one USB stick with the label; refused when there is none or more than one.
 */
export async function chooseStick(label: string, device: string | undefined): Promise<BlockDevice> {
  if (device) {
    const stick = await describeDevice(device);
    if (!isUsb(stick)) throw new StickRefused(`${device} is not a USB stick (udev names its bus ${stick.bus ?? 'nothing'}): not writing to it`);
    return stick;
  }
  const { usb } = await labelledDevices(label);
  if (usb.length !== 1) {
    throw new StickRefused(
      usb.length
        ? `${usb.length} USB sticks carry the label ${label} (${usb.map((s) => s.device).join(', ')}): name the one to write with --device`
        : `no USB stick labelled ${label} is plugged in: plug one in (a FAT stick with the label ${label}) and run this again`,
    );
  }
  return usb[0]!;
}
