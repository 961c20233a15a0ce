import { chmod, readFile, stat } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { readPassphrase } from '../passphrase.ts';
import { type BackupKey, decryptBackup, describeManifest, identitiesIn, openBackup } from './read-backup.ts';
import { restoreCard } from './restore-card.ts';
import { earlierRestores, recordRestore, restoreLogPath } from './restore-log.ts';

export type Print = (line: string) => void;

/** A card given as a block device must not be mounted: two mounts of one filesystem (a desktop's automount) corrupt it. */
async function checkNotMounted(card: string): Promise<void> {
  const info = await stat(card).catch(() => undefined);
  if (!info) throw new UserError(`--card ${card}: no such file or device`);
  if (!info.isBlockDevice()) {
    if (!info.isFile()) throw new UserError(`--card ${card}: neither a block device (/dev/sdX, /dev/mmcblkN) nor an image file`);
    return;
  }
  const { stdout } = await run('lsblk', ['--noheadings', '--list', '--output', 'MOUNTPOINT', card], { what: `list what of ${card} is mounted` });
  const mounted = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (mounted.length) throw new UserError(`${card} is mounted (${mounted.join(', ')}): unmount every partition of it first (e.g. \`udisksctl unmount -b ${card}2\`); nothing was written`);
}

/** `simplex-pi backup-info FILE`: what a backup holds, without any key. */
export async function backupInfo(file: string, print: Print): Promise<void> {
  const { manifest } = await openBackup(await readGivenFile(file, file), file);
  print(describeManifest(manifest));
}

/**
 * A file the command was given, read; one that is missing or unreadable is said as it was given (`restore --backup
 * FILE`, `--identity FILE`, `backup-info FILE`), not as a stack trace.
 */
async function readGivenFile(file: string, label: string): Promise<Buffer> {
  return readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new UserError(`${label}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
}

/** `simplex-pi restore --backup FILE --card DEV|IMG (--identity FILE | --passphrase)`. */
export async function restore(options: { backup: string; card: string; identity?: string; passphrase: boolean; print: Print }): Promise<void> {
  const { print } = options;
  if (process.getuid?.() !== 0) throw new UserError('restore needs root (it attaches the card to a loop device and mounts it): run it with sudo');
  if (Boolean(options.identity) === options.passphrase) throw new UserError('restore needs --identity FILE (the age key backup.recipient belongs to) or --passphrase, one of them');
  await checkNotMounted(options.card);
  const bytes = await readGivenFile(options.backup, `--backup ${options.backup}`);
  // The manifest first (no key needed): a wrong file is told before anyone types a passphrase.
  print(describeManifest((await openBackup(bytes, options.backup)).manifest));
  const key: BackupKey = options.identity
    ? { identities: identitiesIn((await readGivenFile(options.identity, `--identity ${options.identity}`)).toString('utf8'), options.identity), source: options.identity }
    : { passphrase: await readPassphrase({ purpose: `backup ${options.backup}`, confirm: false }) };
  const started = Date.now();
  const backup = await decryptBackup(bytes, key, options.backup);
  const earlier = await earlierRestores(backup.manifest.id);
  const result = await restoreCard({ card: options.card, backup, log: (line) => print(`restore: ${line}`) });
  await recordRestore({ at: new Date().toISOString(), id: backup.manifest.id, card: options.card }).catch((error: Error) => print(`restore: could not note the restore in ${restoreLogPath()}: ${error.message}`));
  for (const note of result.notes) print(`restore: note: ${note}`);
  print(
    `restore: done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${result.files} files of backup ${backup.manifest.id} are on ${options.card} (image ${result.plan.name}, simplexmq ${result.plan.simplexmq.version}). ` +
      'Its first boot keeps these identities and writes the same addresses to the stick.',
  );
  if (backup.manifest.simplexmq !== result.plan.simplexmq.version) print(`restore: the relays' INI is carried from simplexmq ${backup.manifest.simplexmq} to ${result.plan.simplexmq.version} at first boot.`);
  print('');
  print('!! The Pi this backup came from must stay OFF for good, and no other card may be restored from it: two Pis publishing the');
  print('!! same onion services fight over them, and messages and connections get lost. Wipe or destroy the old card.');
  if (/\.img$/i.test(options.card)) {
    await chmod(options.card, 0o600);
    print(`!! ${options.card} now holds every key of the relays (now readable by root only): flash it, then delete it. Never share or publish it.`);
  }
  if (backup.manifest.encryption === 'recipient') {
    print('!! Anyone who knows your age1… recipient can make a backup that opens with your key. Check that the onion addresses above are the ones your group uses.');
  }
  for (const r of earlier) print(`!! You restored this same backup before, on ${r.at}, onto ${r.card}. If that card runs, only one of them may.`);
}
