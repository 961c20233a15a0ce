import { readFile, rename, rm } from 'node:fs/promises';
import { ENCRYPTED_ARCHIVE, HEALTH_FILE, STATE, STATE_DIR, stickFolder } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import type { ClientKey } from './client-auth.ts';
import { type MadeBackup, lastBackup, makeBackup, writeBackup } from './backup.ts';
import { encryptTo, tarOf } from './encrypt.ts';
import { type ExportRecord, exportArmed, recordExport } from './export-log.ts';
import { runningHostname } from './host.ts';
import { type ExportState, encryptedReadme, healthReadme, secretFiles } from './export-files.ts';
import type { ServerRecord } from './server-list.ts';
import { healthReport } from './status.ts';
import { syncDir } from './files.ts';
import { type StickFile, StickRefused, chooseStick, folderHoldsSecrets, writeToStick } from './stick-writer.ts';
import { type BlockDevice, labelledDevices } from './usb-sticks.ts';


/**
 * The export model (README: "Who gets the secrets"). Secrets leave the Pi for a stick in three ways only:
 * - once, automatically: the first labelled USB stick after first boot, and only when it is the only one
 *   (two sticks with the label at that moment: neither gets anything, and the console and journal say why);
 * - whenever root runs `simplex-pi export` on the Pi (an explicit act of someone who already holds root);
 * - encrypted to the recipe's export.encrypt_to, on every labelled stick: useless to anyone but the owner.
 * Any other labelled USB stick gets the health report, which holds no secret; a labelled device that is not USB
 * storage gets nothing at all.
 */

export type Log = (line: string) => void;

type Written = 'secrets' | 'encrypted' | 'health';

async function readJson<T>(path: string, fallback: T): Promise<T> {
  return readFile(path, 'utf8').then((text) => JSON.parse(text) as T, (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return fallback;
    throw error;
  });
}

async function exportState(): Promise<ExportState> {
  const { servers } = await readJson<{ servers: ServerRecord[] }>(STATE.servers, { servers: [] });
  if (!servers.length) throw new Error(`${STATE.servers} is missing: first boot has not finished, there is nothing to export yet`);
  return {
    servers,
    clientKeys: await readJson<ClientKey[]>(STATE.clientKeys, []),
    adminKey: await readJson<ClientKey | undefined>(STATE.adminClientKey, undefined),
  };
}

/** What one stick gets, as files in its folder. */
async function filesFor(plan: BuildPlan, kind: Written, trigger: ExportRecord['trigger'], host: string, stillHolds: boolean): Promise<StickFile[]> {
  const health: StickFile = { path: HEALTH_FILE, content: (await healthReport(plan)).replaceAll('\n', '\r\n') };
  if (kind === 'health') return [{ path: 'README.txt', content: healthReadme(plan, host, stillHolds) }, health];
  const secrets = await secretFiles(plan, await exportState(), host, trigger === 'root' ? 'root' : 'first');
  if (kind === 'secrets') return [...secrets, health];
  const recipient = plan.export.encryptTo!;
  const archive = await encryptTo(recipient, await tarOf(secrets, new Date()));
  return [{ path: 'README.txt', content: encryptedReadme(plan, host, recipient, stillHolds) }, { path: ENCRYPTED_ARCHIVE, content: Buffer.from(archive) }, health];
}

async function writeExport(plan: BuildPlan, stick: BlockDevice, kind: Written, trigger: ExportRecord['trigger'], log: Log): Promise<void> {
  const host = runningHostname(plan);
  const folder = stickFolder(host);
  // Only where no secret goes in the clear: is there one from an earlier export, which its README must not deny?
  const stillHolds = kind !== 'secrets' && (await folderHoldsSecrets(stick.device, folder));
  const files = await filesFor(plan, kind, trigger, host, stillHolds);
  await writeToStick(stick.device, plan.export.usbLabel, folder, files, { diskseq: stick.diskseq, fsUuid: stick.fsUuid });
  if (kind !== 'health') {
    await recordExport({ at: new Date().toISOString(), kind, trigger, device: stick.device, serial: stick.serial ?? null, filesystem: stick.fsUuid ?? null });
  }
  const what = { secrets: 'the addresses and keys', encrypted: `the addresses and keys (encrypted to ${plan.export.encryptTo})`, health: 'the health report only (no secrets)' }[kind];
  log(`export: wrote ${what} to ${stick.device}${stick.serial ? ` (${stick.serial})` : ''}: ${files.length} files in ${folder}/${stillHolds ? '; it still holds secrets from an earlier export' : ''}`);
}

/**
 * Take the pending mark before the stick is opened, durably: whatever happens from here (the write fails halfway,
 * the card turned read-only, the power goes), the next stick is not armed. False when there was none to take.
 */
async function claimFirstExport(): Promise<boolean> {
  try {
    await rename(STATE.exportPending, STATE.exportClaimed);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await syncDir(STATE_DIR);
  return true;
}

/** Put the mark back: only for a stick refused before anything was written to it. */
async function unclaimFirstExport(): Promise<void> {
  await rename(STATE.exportClaimed, STATE.exportPending);
  await syncDir(STATE_DIR);
}

/** Clear the mark for good (the encrypted first export, root's explicit one). */
async function disarmFirstExport(): Promise<void> {
  await rm(STATE.exportPending, { force: true });
  await syncDir(STATE_DIR);
}

/**
 * backup.on_stick: a fresh backup for the owner's stick, but at most one an hour. Each one stops the SMP relays for
 * a moment: plugging a stick in and out again must not keep them down.
 */
const UNATTENDED_BACKUP_INTERVAL_MS = 60 * 60_000;

/** Whether an unattended backup is due now (none in the last hour); says so when it is not. */
async function unattendedBackupDue(log: Log): Promise<boolean> {
  const last = await lastBackup();
  if (last && Date.now() - Date.parse(last.at) < UNATTENDED_BACKUP_INTERVAL_MS) {
    log(`backup: not now: the last one was made at ${last.at}, and sticks plugged in get at most one an hour (each stops the relays for a moment); \`sudo simplex-pi backup\` makes one at any time`);
    return false;
  }
  return true;
}

/**
 * What the export unit runs, for every labelled stick plugged in and at every boot: returns false when it refused
 * something the owner must know about (the unit then fails, which `systemctl --failed` and status show).
 */
export async function automaticExport(plan: BuildPlan, log: Log): Promise<boolean> {
  const label = plan.export.usbLabel;
  const { usb: labelled, other } = await labelledDevices(label);
  for (const device of other) log(`export: ignoring ${device.device}: it carries the label ${label} but is not a USB stick`);
  for (const device of labelled.filter((d) => d.type !== 'vfat')) {
    log(`export: ignoring ${device.device}: it carries the label ${label} but is ${device.type ?? 'not a filesystem'}, not FAT; format the stick FAT32 (vfat) with that label`);
  }
  const usb = labelled.filter((d) => d.type === 'vfat');
  if (!usb.length) {
    log(`export: no FAT USB stick labelled ${label} is plugged in`);
    return true;
  }
  if ((await exportArmed()) && !plan.export.encryptTo) {
    if (usb.length > 1) {
      log(
        `export: REFUSED: ${usb.length} USB sticks carry the label ${label} (${usb.map((s) => s.device).join(', ')}). The relay ` +
          'addresses and keys go to exactly one stick: none gets them. Unplug them all, then plug in only your own: the export ' +
          'runs again when it is plugged in.',
      );
      return false;
    }
    if (await claimFirstExport()) {
      try {
        await writeExport(plan, usb[0]!, 'secrets', 'first', log);
      } catch (error) {
        if (!(error instanceof StickRefused)) {
          log('export: the one automatic export of secrets failed while it wrote; it is used up all the same. Run `sudo simplex-pi export` to write them again.');
          throw error;
        }
        await unclaimFirstExport();
        log(`export: ${error.message}`);
        return false;
      }
      await rm(STATE.exportClaimed, { force: true });
      log('export: that was the one automatic export of secrets; a stick plugged in from now on gets only the health report (`sudo simplex-pi export` writes the secrets again)');
      return true;
    }
  }
  const firstExport = await exportArmed();
  if (firstExport) await disarmFirstExport();
  let ok = true;
  // backup.on_stick: every labelled stick of this run carries a fresh backup too, encrypted to backup.recipient: one
  // backup (the relays stop once), written to each.
  const recipient = plan.backup.onStick ? plan.backup.recipient : null;
  const backupDue = recipient !== null && (await unattendedBackupDue(log));
  let made: MadeBackup | undefined;
  for (const stick of usb) {
    try {
      await writeExport(plan, stick, plan.export.encryptTo ? 'encrypted' : 'health', firstExport ? 'first' : 'plugged', log);
      if (backupDue) {
        made ??= await makeBackup(plan, { recipient: recipient! }, log);
        await writeBackup(plan, made, { stick }, log);
      }
    } catch (error) {
      if (!(error instanceof StickRefused)) throw error;
      log(`export: ${error.message}`);
      ok = false;
    }
  }
  return ok;
}

/** `sudo simplex-pi export [--device DEV]`: root asks for the secrets, in the clear, on one labelled USB stick. */
export async function explicitExport(plan: BuildPlan, device: string | undefined, log: Log): Promise<void> {
  await writeExport(plan, await chooseStick(plan.export.usbLabel, device), 'secrets', 'root', log);
  // Secrets went to a stick by root's hand: no automatic export is needed any more.
  await disarmFirstExport();
}
