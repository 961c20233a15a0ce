import { chmod, lstat, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildLog } from '../log.ts';
import { type Ext4Entry, readExt4Entry } from './ext4.ts';

/**
 * /etc/machine-id as the base image had it, and put back exactly so when the image is sealed. What the file holds
 * decides systemd's first boot (machine-id(5), systemd 257 in Debian trixie): "uninitialized" (or no file) makes
 * the card's first boot a *first boot*, which runs every `ConditionFirstBoot=yes` unit; an empty file does not.
 * Raspberry Pi OS ships "uninitialized" (pi-gen export-image/05-finalise, since 2025-06) and grows its root
 * filesystem from such a unit (rpi-resize.service pulls in systemd-growfs-root.service): an empty file there
 * leaves every card with the filesystem the image had. The Debian base (mmdebstrap) ships an empty file and
 * grows the card with simplex-pi-growroot.service, which does not depend on a first boot; "uninitialized" there
 * would run trixie's systemd-firstboot.service, which can prompt on the console. So: the base's own value, never
 * the one the build's package scripts may have written, and never an ID (every card would share it).
 */

export const MACHINE_ID = '/etc/machine-id';
/** dbus's copy: a file here is a machine ID of its own (dbus-uuidgen); a symlink to /etc/machine-id is fine. */
export const DBUS_MACHINE_ID = '/var/lib/dbus/machine-id';
export const UNINITIALIZED = 'uninitialized';

export type BaseMachineId =
  | { kind: 'absent' }
  | { kind: 'empty'; mode: number }
  | { kind: 'uninitialized'; mode: number }
  /** A real ID: the base was made from a machine that booted. Sealed as empty, with a warning. */
  | { kind: 'id'; mode: number }
  | { kind: 'symlink'; target: string };

export function classifyMachineId(entry: Ext4Entry): BaseMachineId {
  switch (entry.kind) {
    case 'absent':
      return { kind: 'absent' };
    case 'symlink':
      return { kind: 'symlink', target: entry.target };
    case 'file': {
      const text = entry.content.trim();
      if (text === '') return { kind: 'empty', mode: entry.mode };
      if (text === UNINITIALIZED) return { kind: 'uninitialized', mode: entry.mode };
      return { kind: 'id', mode: entry.mode };
    }
    case 'other':
      return { kind: 'id', mode: 0o444 };
  }
}

/**
 * Whether a card's first boot is a systemd *first boot* with this machine-id, and what that means, in words for
 * `inspect-base` (machine-id(5): no file or "uninitialized" makes one; an empty file or an ID does not).
 */
export function firstBootOf(base: BaseMachineId): { firstBoot: boolean; meaning: string } {
  switch (base.kind) {
    case 'absent':
      return { firstBoot: true, meaning: 'a first boot for systemd: ConditionFirstBoot=yes units (rpi-resize.service) run, and systemd writes a new id' };
    case 'uninitialized':
      return {
        firstBoot: true,
        meaning: 'a first boot for systemd (what pi-gen writes): ConditionFirstBoot=yes units (rpi-resize.service) run, and the id is committed at first-boot-complete.target',
      };
    case 'empty':
      return {
        firstBoot: false,
        meaning: 'NOT a first boot for systemd: ConditionFirstBoot=yes units (rpi-resize.service, so the root filesystem does not grow) are skipped; systemd makes a new id on the first boot',
      };
    case 'id':
      return {
        firstBoot: false,
        meaning: 'a machine ID (the image was made from a system that booted): every card flashed from it as it is shares it, and ConditionFirstBoot=yes units never run; simplex-pi seals such a base with an empty file',
      };
    case 'symlink':
      return { firstBoot: false, meaning: `a symbolic link to ${base.target}: what the first boot is depends on what is there when the card boots` };
  }
}

/** Read the base's machine-id from its root filesystem (`ext4Target`), before any package script runs. */
export async function readBaseMachineId(target: string, log?: BuildLog): Promise<BaseMachineId> {
  return classifyMachineId(await readExt4Entry(target, MACHINE_ID, log));
}

/** seal: the base's machine-id back in the mounted tree; dbus's own ID removed. Returns a warning, if any. */
export async function restoreMachineId(root: string, base: BaseMachineId): Promise<string | undefined> {
  const path = join(root, MACHINE_ID);
  await rm(path, { force: true });
  let warning: string | undefined;
  switch (base.kind) {
    case 'absent':
      break;
    case 'symlink':
      await symlink(base.target, path);
      break;
    case 'uninitialized':
      await writeFile(path, `${UNINITIALIZED}\n`, { mode: base.mode });
      break;
    case 'id':
      warning =
        `the base image has a machine ID in ${MACHINE_ID} (it was made from a system that booted); the image gets an empty one, ` +
        "so every card makes its own, but that card's first boot is not a systemd first boot (ConditionFirstBoot units do not run)";
      await writeFile(path, '', { mode: base.mode });
      break;
    case 'empty':
      await writeFile(path, '', { mode: base.mode });
      break;
  }
  if (base.kind === 'empty' || base.kind === 'uninitialized' || base.kind === 'id') await chmod(path, base.mode);
  const dbus = join(root, DBUS_MACHINE_ID);
  const info = await lstat(dbus).catch(() => undefined);
  if (info && !info.isSymbolicLink()) await rm(dbus, { force: true });
  return warning;
}
