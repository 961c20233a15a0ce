import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { runTool } from './tool.ts';

/**
 * Which block devices may receive an export: USB mass storage (udev's ID_BUS=usb: a USB device that is a block
 * device is a mass-storage one) with a FAT filesystem carrying the recipe's label. A device with the label on
 * any other bus (the SD card's own partitions, an NVMe or SATA disk, a virtual disk) is listed apart, so the
 * caller can say it was ignored.
 */

export interface BlockDevice {
  /** /dev/sda1, or /dev/sda for a stick formatted without a partition table. */
  device: string;
  /** udev's ID_BUS: usb, ata, scsi, … (undefined for virtio and the SD card). */
  bus: string | undefined;
  label: string | undefined;
  type: string | undefined;
  /** udev's ID_SERIAL, to tell sticks apart in the export log. */
  serial: string | undefined;
  /** The filesystem's own id (for FAT, its volume serial). */
  fsUuid: string | undefined;
  /** udev's DISKSEQ (systemd 250+): the disk sequence number when udev listed it, to tell a stick swapped since. */
  diskseq: string | undefined;
}

/** `udevadm info --export-db`: one record per device, blank-line separated, properties on `E: KEY=VALUE` lines. */
export function parseUdevDb(text: string): BlockDevice[] {
  const devices: BlockDevice[] = [];
  for (const record of text.split(/\n\s*\n/)) {
    const env = new Map<string, string>();
    for (const line of record.split('\n')) {
      const match = /^E: ([^=]+)=(.*)$/.exec(line);
      if (match) env.set(match[1]!, match[2]!);
    }
    if (env.get('SUBSYSTEM') !== 'block' || !env.get('DEVNAME')) continue;
    devices.push({
      device: env.get('DEVNAME')!,
      bus: env.get('ID_BUS'),
      label: env.get('ID_FS_LABEL'),
      type: env.get('ID_FS_TYPE'),
      serial: env.get('ID_SERIAL'),
      fsUuid: env.get('ID_FS_UUID'),
      diskseq: env.get('DISKSEQ'),
    });
  }
  return devices;
}

export function isUsb(device: BlockDevice): boolean {
  return device.bus === 'usb';
}

/**
 * How long udev and blkid may take to answer. Milliseconds on an idle Pi, but the export unit runs at boot, when a
 * Pi can be busy for minutes (cloud-init, first boot's keys, a slow card): seen taking over 20 s in the VM tests
 * under load, which failed the unit. The unit's own TimeoutStartSec bounds the whole export.
 */
const UDEV_QUERY_TIMEOUT_MS = 90_000;

/** The filesystems with the label that udev knows of (FAT or not: the caller says why it skips one), USB sticks and the others apart. */
export async function labelledDevices(label: string): Promise<{ usb: BlockDevice[]; other: BlockDevice[] }> {
  const { stdout } = await runTool('udevadm', ['info', '--export-db'], { timeoutMs: UDEV_QUERY_TIMEOUT_MS });
  const labelled = parseUdevDb(stdout).filter((d) => d.label === label);
  return { usb: labelled.filter(isUsb), other: labelled.filter((d) => !isUsb(d)) };
}

/** What udev knows of one device (for a device named on the command line); nothing, for a device it does not know. */
export async function describeDevice(name: string): Promise<BlockDevice> {
  // /dev/disk/by-label/SIMPLEX and the like: the device node itself, which names its disk in /sys.
  const device = await realpath(name).catch(() => name);
  const unknown: BlockDevice = { device, bus: undefined, label: undefined, type: undefined, serial: undefined, fsUuid: undefined, diskseq: undefined };
  const { stdout } = await runTool('udevadm', ['info', '--query=property', `--name=${device}`], { timeoutMs: UDEV_QUERY_TIMEOUT_MS }).catch(() => ({ stdout: '' }));
  const lines = stdout.split('\n').map((l) => `E: ${l}`).join('\n');
  return { ...unknown, ...parseUdevDb(lines)[0], device };
}

/**
 * The disk sequence number of the disk holding `device` (Linux 5.15+): it changes whenever the medium behind a
 * device name changes, so a stick swapped for another under the same name (sda1 again) is told apart.
 * Undefined on a kernel without it.
 */
export async function diskSequence(device: string): Promise<string | undefined> {
  try {
    const sys = await realpath(join('/sys/class/block', basename(device)));
    const isPartition = await stat(join(sys, 'partition')).then(() => true, () => false);
    return (await readFile(join(isPartition ? dirname(sys) : sys, 'diskseq'), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** The label and type read from the device itself now (blkid's low-level probe, not udev's or blkid's cache). */
export async function probeFilesystem(device: string): Promise<{ label: string; type: string; uuid: string }> {
  const { stdout } = await runTool('blkid', ['-p', '-o', 'export', device], { timeoutMs: UDEV_QUERY_TIMEOUT_MS }).catch(() => ({ stdout: '' }));
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(stdout)?.[1] ?? '';
  return { label: value('LABEL'), type: value('TYPE'), uuid: value('UUID') };
}
