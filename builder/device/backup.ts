import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { currentRelease } from './relay-releases.ts';
import { basename, join } from 'node:path';
import { BACKUP_FORMAT, type BackupEntry, type BackupManifest, MANIFEST_MEMBER, ONION_FILES, ROLE, SECRETS_MEMBER, backupFileName } from '../backup/format.ts';
import { exists } from '../exists.ts';
import { AUTHORIZED_CLIENTS, BACKUP_FOLDER, RELAY_KINDS, STATE, stickFolder } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { type Relay, relaysOf } from '../plan/relays.ts';
import { fingerprintOf } from './address.ts';
import { runningHostname } from './host.ts';
import { onionAddress } from './onion.ts';
import { StickRefused, chooseStick, writeToStick } from './stick-writer.ts';
import { type AgeEncryption, ageEncrypt, tarMembers } from './encrypt.ts';
import { appendJsonLine, lastJsonLine } from './json-lines.ts';
import { listeningNow } from './listening.ts';
import { runTool } from './tool.ts';
import type { BlockDevice } from './usb-sticks.ts';

/**
 * `simplex-pi backup`: everything that makes the relays the same relays, in one age-encrypted archive
 * (backup/format.ts), so that a new card restored from it (`simplex-pi restore` on the owner's computer) serves the
 * same onion addresses with the same identities, passwords, queues and undelivered messages.
 *
 * What goes in, and what does not:
 * - each relay's onion service keys, its configuration directory (CA and server keys and certificates, fingerprint,
 *   INI with the password) and, for SMP, its state directory (queue store, saved messages, statistics);
 * - SSH's onion keys and the SSH host keys, so the admin's `known_hosts` still fits;
 * - the Pi's own client-authorization keys (members', its relays', the admin's), from which first boot writes
 *   every authorization file again; the files themselves are not restored, so a key the new image's recipe drops
 *   stays dropped;
 * - not the XFTP relay's files in transit: up to its quota (gigabytes), and gone within 48 hours anyway; its
 *   identity and password are in.
 * An SMP relay holds undelivered messages in memory and writes them out only when it stops: each one is stopped
 * for the moment its files are read, and started again, one at a time.
 */

export type Log = (line: string) => void;

/** How the archive is encrypted: to the recipe's (or a given) age recipient, or with a passphrase (scrypt). */
export type BackupEncryption = AgeEncryption;

/** Stops a relay for the backup; returns what starts it again. Only SMP relays hold state in memory. */
export type PauseRelay = (relay: Relay) => Promise<() => Promise<void>>;

/** Regular files directly in `dir` (links and devices are never followed or read), sorted; none if it is missing. */
async function regularFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const files: string[] = [];
  for (const name of names.sort()) if ((await lstat(join(dir, name))).isFile()) files.push(name);
  return files;
}

/** The file's bytes and mode, read through one descriptor opened without following a link (checked on that descriptor). */
async function entryOf(role: string, path: string): Promise<BackupEntry> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${path} is not a regular file; not backing it up`);
    return { path: `${role}/${basename(path)}`, mode: info.mode & 0o777, content: await handle.readFile() };
  } finally {
    await handle.close();
  }
}

async function onionEntries(role: string, dir: string, root: string): Promise<BackupEntry[]> {
  const entries: BackupEntry[] = [];
  for (const name of ONION_FILES) entries.push(await entryOf(role, join(root, dir, name)));
  for (const name of await regularFiles(join(root, dir, AUTHORIZED_CLIENTS))) entries.push(await entryOf(`${role}/${AUTHORIZED_CLIENTS}`, join(root, dir, AUTHORIZED_CLIENTS, name)));
  return entries;
}

function onionOf(entries: readonly BackupEntry[], role: string): string {
  const key = entries.find((e) => e.path === `${role}/hs_ed25519_public_key`)!;
  return onionAddress(key.content.subarray(32));
}

export interface CollectOptions {
  /** Where the Pi's root is: '/' on the Pi; a directory in tests. */
  root?: string;
  pause?: PauseRelay;
  now?: Date;
}

/** Read every file the backup holds, with its manifest (encryption still to be said). */
export async function collectBackup(plan: BuildPlan, options: CollectOptions = {}): Promise<{ manifest: Omit<BackupManifest, 'encryption'>; entries: BackupEntry[] }> {
  const root = options.root ?? '/';
  const entries: BackupEntry[] = [];
  const relays: BackupManifest['relays'] = [];
  for (const relay of relaysOf(plan)) {
    const onionRole = ROLE.relayOnion(relay.name);
    entries.push(...(await onionEntries(onionRole, relay.onion.dir, root)));
    const resume = relay.kind === 'smp' && options.pause ? await options.pause(relay) : undefined;
    try {
      const config = join(root, relay.cfgPath);
      for (const name of await regularFiles(config)) entries.push(await entryOf(ROLE.relayConfig(relay.name), join(config, name)));
      if (relay.kind === 'smp') {
        const state = join(root, relay.logPath);
        // The counts the relay rewrites every few minutes are its own business, not what makes it the same relay.
        for (const name of (await regularFiles(state)).filter((n) => n !== RELAY_KINDS[relay.kind].metricsFile)) entries.push(await entryOf(ROLE.relayState(relay.name), join(state, name)));
      }
    } finally {
      await resume?.();
    }
    const caCert = entries.find((e) => e.path === `${ROLE.relayConfig(relay.name)}/ca.crt`);
    if (!caCert) throw new Error(`${relay.name}: ${relay.cfgPath}/ca.crt is missing: first boot has not made this relay's identity; there is nothing to back up yet`);
    relays.push({ name: relay.name, kind: relay.kind, onion: onionOf(entries, onionRole), port: relay.onion.virtualPort, fingerprint: fingerprintOf(caCert.content.toString('utf8')) });
  }
  let ssh: BackupManifest['ssh'] = null;
  if (plan.ssh.onion) {
    entries.push(...(await onionEntries(ROLE.sshOnion, plan.ssh.onion.dir, root)));
    ssh = { onion: onionOf(entries, ROLE.sshOnion) };
  }
  for (const name of (await regularFiles(join(root, 'etc/ssh'))).filter((n) => n.startsWith('ssh_host_'))) entries.push(await entryOf(ROLE.sshHostKeys, join(root, 'etc/ssh', name)));
  for (const path of [STATE.clientKeys, STATE.selfClientKey, STATE.adminClientKey]) {
    if (await lstat(join(root, path)).then(() => true, () => false)) entries.push(await entryOf(ROLE.piState, join(root, path)));
  }
  const manifest = {
    format: BACKUP_FORMAT,
    id: randomBytes(16).toString('hex'),
    createdAt: (options.now ?? new Date()).toISOString(),
    host: runningHostname(plan),
    recipe: plan.name,
    // The release the relays run now (an update may have replaced the image's): restore migrates their INI from it.
    simplexmq: (await currentRelease(root)) ?? plan.simplexmq.version,
    relays,
    ssh,
    files: entries.length,
    bytes: entries.reduce((sum, e) => sum + e.content.length, 0),
  } satisfies Omit<BackupManifest, 'encryption'>;
  return { manifest, entries };
}

/** The backup file: the manifest in the clear, and the files with the manifest again, age-encrypted. */
export async function sealBackup(collected: { manifest: Omit<BackupManifest, 'encryption'>; entries: readonly BackupEntry[] }, encryption: BackupEncryption): Promise<{ manifest: BackupManifest; file: Buffer }> {
  const manifest: BackupManifest = { ...collected.manifest, encryption: 'recipient' in encryption ? 'recipient' : 'passphrase' };
  const manifestJson = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  const mtime = new Date(manifest.createdAt);
  const inner = await tarMembers([{ name: MANIFEST_MEMBER, content: manifestJson }, ...collected.entries.map((e) => ({ name: e.path, mode: e.mode, content: e.content }))], mtime);
  const sealed = Buffer.from(await ageEncrypt(encryption, inner));
  const file = await tarMembers([{ name: MANIFEST_MEMBER, content: manifestJson }, { name: SECRETS_MEMBER, content: sealed }], mtime);
  return { manifest, file };
}

/** Longer than a relay unit's own TimeoutStopSec (overlays/partials/relay-stop.hbs): a big store takes long to save. */
const STOP_TIMEOUT_MS = 16 * 60_000;
/** How long a relay that is starting or stopping (a boot, a restart) is given to settle before the backup gives up. */
const SETTLE_TIMEOUT_MS = 5 * 60_000;

async function unitState(unit: string): Promise<{ state: string; job: boolean }> {
  const { stdout } = await runTool('systemctl', ['show', unit, '--property=ActiveState,Job']).catch(() => ({ stdout: '' }));
  const state = /^ActiveState=(.*)$/m.exec(stdout)?.[1] ?? 'unknown';
  return { state, job: /^Job=\S+/m.test(stdout) };
}

/**
 * Wait until the relay has settled: running and listening (a relay that has just started reads its saved
 * messages and store log, and renames them, before it listens), or stopped with nothing queued. A backup taken
 * in between could miss both files.
 */
async function settled(relay: Relay): Promise<boolean> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const { state, job } = await unitState(relay.unit);
    if (!job && state === 'active' && (await listeningNow()).has(relay.localPort)) return true;
    if (!job && (state === 'inactive' || state === 'failed')) return false;
    if (state === 'unknown') throw new Error(`systemd could not say whether ${relay.name} (${relay.unit}) runs: no backup taken`);
    if (Date.now() > deadline) throw new Error(`${relay.name} (${relay.unit}) did not settle within ${SETTLE_TIMEOUT_MS / 60_000} minutes (${state}${job ? ', a job queued' : ''}): no backup taken; try again later`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Relays stopped by a backup now running: a signal (Ctrl-C, a dropped SSH, the unit's time limit) starts them again. */
const paused = new Set<() => Promise<void>>();
let handlersInstalled = false;

function startPausedOnSignal(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      void Promise.allSettled([...paused].map((resume) => resume())).finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
    });
  }
}

/**
 * Stop an SMP relay that runs (its unit saves its messages: KillSignal=SIGINT), and start it again afterwards,
 * whatever happens in between: a stop that failed or timed out still gets a start, so a backup never leaves a
 * relay down.
 */
export const pauseRelayUnit: PauseRelay = async (relay) => {
  // sd_booted(): without systemd as init (an image's chroot, a build) no relay unit can be running.
  if (!(await exists('/run/systemd/system'))) return async () => {};
  if (!(await settled(relay))) return async () => {};
  startPausedOnSignal();
  const resume = async () => {
    paused.delete(resume);
    await runTool('systemctl', ['start', relay.unit], { timeoutMs: 5 * 60_000 });
  };
  paused.add(resume);
  try {
    await runTool('systemctl', ['stop', relay.unit], { timeoutMs: STOP_TIMEOUT_MS });
  } catch (error) {
    await resume().catch(() => {});
    throw error;
  }
  return resume;
};

/** Every backup made on this Pi: `status` shows the last. */
export interface BackupRecord {
  at: string;
  id: string;
  encryption: BackupManifest['encryption'];
  /** A stick (device and serial) or a file. */
  to: string;
  bytes: number;
  /** Of the whole file: to check a copy against (`sha256sum`). */
  sha256: string;
}

export async function lastBackup(): Promise<BackupRecord | undefined> {
  return lastJsonLine<BackupRecord>(STATE.backupLog);
}

export type BackupTarget = { stick: BlockDevice } | { file: string; write: (bytes: Buffer) => Promise<void> };

/** A backup made (relays paused and started again), not yet written anywhere. */
export interface MadeBackup {
  manifest: BackupManifest;
  file: Buffer;
  /** How it is encrypted, as the log line says it. */
  how: string;
  seconds: number;
}

export async function makeBackup(plan: BuildPlan, encryption: BackupEncryption, log: Log, pause: PauseRelay = pauseRelayUnit): Promise<MadeBackup> {
  const started = Date.now();
  const collected = await collectBackup(plan, {
    pause: async (relay) => {
      const resume = await pause(relay);
      log(`backup: ${relay.name} stopped for a moment (it saves the messages it holds)`);
      return async () => {
        await resume();
        log(`backup: ${relay.name} started again`);
      };
    },
  });
  const { manifest, file } = await sealBackup(collected, encryption);
  const how = 'recipient' in encryption ? `encrypted to ${encryption.recipient}` : 'encrypted with a passphrase';
  return { manifest, file, how, seconds: (Date.now() - started) / 1000 };
}

/** Put a backup where it was asked (a stick, checked like the export's, or a file), and record it. */
export async function writeBackup(plan: BuildPlan, made: MadeBackup, target: BackupTarget, log: Log): Promise<void> {
  const { manifest, file } = made;
  const host = runningHostname(plan);
  const name = backupFileName(host, new Date(manifest.createdAt));
  let to: string;
  if ('stick' in target) {
    const { stick } = target;
    await writeToStick(stick.device, plan.export.usbLabel, stickFolder(host), [{ path: `${BACKUP_FOLDER}/${name}`, content: file }], { diskseq: stick.diskseq, fsUuid: stick.fsUuid });
    to = `${stick.device}${stick.serial ? ` (${stick.serial})` : ''}: ${stickFolder(host)}/${BACKUP_FOLDER}/${name}`;
  } else {
    await target.write(file);
    to = target.file;
  }
  const sha256 = createHash('sha256').update(file).digest('hex');
  await appendJsonLine(STATE.backupLog, { at: new Date().toISOString(), id: manifest.id, encryption: manifest.encryption, to, bytes: file.length, sha256 } satisfies BackupRecord);
  log(`backup: ${manifest.relays.length} relays${manifest.ssh ? ' and SSH' : ''}, ${manifest.files} files, ${file.length} bytes, ${made.how}, in ${made.seconds.toFixed(1)} s: written to ${to} (sha256 ${sha256})`);
}

/**
 * Make a backup and put it where it was asked: a labelled USB stick (in `<folder>/backups/`, written like the
 * export: only the stick udev listed, checked again on the device) or a file (`--output`). Relays are started
 * again even when the backup fails.
 */
export async function backup(plan: BuildPlan, encryption: BackupEncryption, target: BackupTarget, log: Log, pause: PauseRelay = pauseRelayUnit): Promise<BackupManifest> {
  const made = await makeBackup(plan, encryption, log, pause);
  await writeBackup(plan, made, target, log);
  return made.manifest;
}

/** The stick for `simplex-pi backup` without --output: the one labelled USB stick, or --device. */
export async function backupStick(plan: BuildPlan, device: string | undefined): Promise<BlockDevice> {
  return chooseStick(plan.export.usbLabel, device).catch((error: unknown) => {
    throw error instanceof StickRefused ? new StickRefused(`backup: ${error.message}`) : error;
  });
}
