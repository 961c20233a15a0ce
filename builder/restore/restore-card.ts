import { lstat, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackupEntry, type BackupManifest, ROLE } from '../backup/format.ts';
import { type Owner, atomicWrite, ensureDir } from '../device/files.ts';
import { ownerOf } from '../device/ids.ts';
import type { RestoredRecord } from '../device/restored.ts';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { readFeatures } from '../image/ext4.ts';
import { attachPartition } from '../image/loop.ts';
import { unmount } from '../image/mounts.ts';
import { raspberryPiLayout, readPartitionTable } from '../image/partitions.ts';
import { AUTHORIZED_CLIENTS, PLAN_PATH, PLAN_SCHEMA_VERSION, STATE, STATE_DIR, TOR_USER } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { Resources } from '../resources.ts';

/**
 * `simplex-pi restore`: a decrypted backup (read-backup.ts) written into a freshly flashed card's root
 * filesystem, or into an image before it is flashed, so that its first boot keeps those identities (first boot
 * keeps whatever complete identity it finds) instead of making new ones.
 *
 * Everything is checked with the card's root filesystem on a read-only loop device (the kernel writes nothing to
 * it, not even the journal): that the card never booted, that its image's relays are the backup's. Only then is it
 * opened for writing. A write that fails halfway takes back what it wrote.
 */

export type Log = (line: string) => void;

/** Where each file of the backup goes on this card, and whose it is. */
interface Placement {
  entry: BackupEntry;
  path: string;
  owner: 'tor' | 'relay' | 'root';
}

/** File names a backup may carry in a role directory: no path, no dot file. */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const SSH_HOST_KEY = /^ssh_host_[a-z0-9]+_key(\.pub)?$/;
const PI_STATE_FILES = new Map([STATE.clientKeys, STATE.selfClientKey, STATE.adminClientKey].map((p) => [p.slice(p.lastIndexOf('/') + 1), p]));

/**
 * The relays of the backup against the card's: the same names and kinds, or a refusal that says which relay is
 * missing or extra. Directories may differ (a newer image): files go by role, into the card's plan's paths.
 */
export function placeBackup(manifest: BackupManifest, entries: readonly BackupEntry[], plan: BuildPlan): { placements: Placement[]; notes: string[] } {
  const cardRelays = relaysOf(plan);
  const inBackup = manifest.relays.map((r) => `${r.name} (${r.kind})`);
  const onCard = cardRelays.map((r) => `${r.name} (${r.kind})`);
  const extra = inBackup.filter((r) => !onCard.includes(r));
  const missing = onCard.filter((r) => !inBackup.includes(r));
  if (extra.length || missing.length) {
    throw new UserError(
      [
        `the backup's relays do not match this card's image (recipe ${plan.name}): nothing was written to the card.`,
        ...(extra.length ? [`  in the backup but not on the card: ${extra.join(', ')} (the image has ${onCard.length} relays: build it from a recipe with the same smp.instances and xftp)`] : []),
        ...(missing.length ? [`  on the card but not in the backup: ${missing.join(', ')} (their addresses would be new; build the image with the backup's relays)`] : []),
      ].join('\n'),
    );
  }
  const ports = manifest.relays.flatMap((r) => {
    const port = cardRelays.find((c) => c.name === r.name)!.onion.virtualPort;
    return port === r.port ? [] : [`${r.name}: onion port ${r.port} in the backup, ${port} in this image`];
  });
  if (ports.length) {
    throw new UserError(
      [`this card's image gives the relays other onion ports than the backup's, so every address the group has would change: nothing was written to the card.`, ...ports.map((p) => `  ${p}`), '  Build the image with the same smp.onion_port and xftp.onion_port.'].join('\n'),
    );
  }
  const notes: string[] = [];
  const placements: Placement[] = [];
  const unknown = (entry: BackupEntry) => new UserError(`the backup holds ${entry.path}, which simplex-pi backup never writes: not restoring from it; nothing was written to the card`);
  for (const entry of entries) {
    const parts = entry.path.split('/');
    const name = parts.at(-1)!;
    if (!SAFE_NAME.test(name)) throw unknown(entry);
    const relay = parts[0] === 'relays' ? cardRelays.find((r) => r.name === parts[1]) : undefined;
    const dir = parts.slice(0, -1).join('/');
    if (relay && dir === ROLE.relayOnion(relay.name)) placements.push({ entry, path: join(relay.onion.dir, name), owner: 'tor' });
    else if (relay && dir === ROLE.relayConfig(relay.name)) placements.push({ entry, path: join(relay.cfgPath, name), owner: 'relay' });
    else if (relay && dir === ROLE.relayState(relay.name)) placements.push({ entry, path: join(relay.logPath, name), owner: 'relay' });
    else if (relay && dir === `${ROLE.relayOnion(relay.name)}/${AUTHORIZED_CLIENTS}`) continue;
    else if (dir === ROLE.sshOnion && plan.ssh.onion) placements.push({ entry, path: join(plan.ssh.onion.dir, name), owner: 'tor' });
    else if (dir === `${ROLE.sshOnion}/${AUTHORIZED_CLIENTS}` || dir === ROLE.sshOnion) continue;
    else if (dir === ROLE.sshHostKeys && SSH_HOST_KEY.test(name)) placements.push({ entry, path: `/etc/ssh/${name}`, owner: 'root' });
    else if (dir === ROLE.piState && PI_STATE_FILES.has(name)) {
      checkClientKeys(entry);
      placements.push({ entry, path: PI_STATE_FILES.get(name)!, owner: 'root' });
    }
    else throw unknown(entry);
  }
  // Authorization files are written again by first boot from the Pi's keys and this image's recipe: a client key the
  // new recipe dropped stays dropped.
  if (manifest.ssh && !plan.ssh.onion) notes.push(`the backup has an SSH onion service (${manifest.ssh.onion}); this image has none, so it is not restored`);
  if (!manifest.ssh && plan.ssh.onion) notes.push('this image has an SSH onion service and the backup none: first boot makes a new SSH address');
  return { placements, notes };
}

/**
 * The Pi's client keys: first boot makes file names of their names (`<name>.auth` in each onion service's
 * directory of authorized clients) and lines of their keys, so a name must be a plain name and a key Tor's base32 x25519 key.
 */
function checkClientKeys(entry: BackupEntry): void {
  let keys: unknown;
  try {
    keys = JSON.parse(entry.content.toString('utf8'));
  } catch {
    keys = undefined;
  }
  const list = Array.isArray(keys) ? keys : [keys];
  const valid = list.every((k) => typeof k === 'object' && k !== null && /^[A-Za-z0-9_-]{1,64}$/.test(String(k.name)) && /^[A-Z2-7]{52}$/.test(String(k.publicKey)) && /^[A-Z2-7]{52}$/.test(String(k.privateKey)));
  if (!valid) throw new UserError(`the backup's ${entry.path} is not a list of client keys as simplex-pi writes them: not restoring from it; nothing was written to the card`);
}

export interface RestoreOptions {
  card: string;
  backup: { manifest: BackupManifest; entries: BackupEntry[] };
  log: Log;
  /** Where the card's root filesystem is mounted meanwhile (an empty directory is made in it). */
  tmpDir?: string;
  now?: Date;
}

async function mountRoot(card: string, resources: Resources, readOnly: boolean, tmpDir: string): Promise<string> {
  const { root } = raspberryPiLayout(await readPartitionTable(card), card);
  const loop = await attachPartition(card, root, resources, undefined, { readOnly });
  // A card that ran and lost power has a journal still to replay: what it made (firstboot.done, onion keys) may be
  // only there, where the read-only check below cannot see it. A freshly flashed card never needs recovery.
  if (readOnly && (await readFeatures(loop.device)).includes('needs_recovery')) {
    throw new UserError(`${card}: its root filesystem was not cleanly unmounted, so the card has run: flash the image again and restore before its first boot; nothing was written`);
  }
  // Mounted, the mount point takes the card's root directory's mode (0755): its parent, 0700, keeps every other
  // account of this computer out while the card's keys are there.
  const parent = await mkdtemp(join(tmpDir, 'simplex-pi-restore-'));
  resources.hold(`mount point ${parent}`, () => rm(parent, { recursive: true, force: true }));
  const mountPoint = join(parent, 'root');
  await mkdir(mountPoint, { mode: 0o700 });
  // Read-only and without replaying the journal: the card is not changed while it is only being checked.
  await run('mount', ['-t', 'ext4', '-o', readOnly ? 'ro,noload,nodev,nosuid,noexec' : 'nodev,nosuid,noexec', loop.device, mountPoint], { what: `mount the root filesystem of ${card}` });
  resources.hold(`mount ${mountPoint}`, () => unmount(mountPoint));
  return mountPoint;
}

/**
 * Whether a path on the mounted card exists, without following a link: builder/exists.ts follows links, and a link on
 * the card may point anywhere on this computer.
 */
async function present(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** What the card is: its image's plan; refused if it is not a simplex-pi card of this version, or already booted or restored. */
async function checkCard(root: string, card: string): Promise<{ plan: BuildPlan; passwd: string }> {
  const planText = await readFile(join(root, PLAN_PATH), 'utf8').catch(() => undefined);
  if (planText === undefined) throw new UserError(`${card}: its root filesystem has no ${PLAN_PATH}: not a card flashed with a simplex-pi image; nothing was written`);
  const plan = JSON.parse(planText) as BuildPlan;
  if (plan.schemaVersion !== PLAN_SCHEMA_VERSION) {
    throw new UserError(`${card}: its image was built by another version of simplex-pi (plan version ${plan.schemaVersion}, this one reads ${PLAN_SCHEMA_VERSION}): restore with the simplex-pi that built it; nothing was written`);
  }
  if (await present(join(root, STATE.firstbootDone))) {
    throw new UserError(`${card} has booted already: its first boot made identities of its own, which a restore must not mix with the backup's. Flash the image again and restore before the card's first boot; nothing was written`);
  }
  const restored = await readFile(join(root, STATE.restored), 'utf8').catch(() => undefined);
  if (restored !== undefined) {
    const record = JSON.parse(restored) as RestoredRecord;
    throw new UserError(
      record.complete
        ? `${card} was already restored from backup ${record.id} (${record.restoredAt}): flash the image again to restore another; nothing was written`
        : `${card}: a restore of backup ${record.id} (${record.restoredAt}) was cut off before it finished: flash the image again and restore onto it; nothing was written`,
    );
  }
  for (const relay of relaysOf(plan)) {
    if (await present(join(root, relay.onion.dir, 'hs_ed25519_secret_key'))) {
      throw new UserError(`${card} already has an onion key for ${relay.name} (a first boot began): flash the image again and restore before the card's first boot; nothing was written`);
    }
  }
  return { plan, passwd: await readFile(join(root, 'etc/passwd'), 'utf8') };
}

/** What a restore wrote, to take back if it cannot finish: files, and the directories it made (newest last). */
interface Written {
  files: string[];
  dirs: string[];
}

async function takeBack(written: Written): Promise<void> {
  for (const path of written.files) await rm(path, { force: true });
  for (const dir of [...written.dirs].reverse()) await rm(dir, { recursive: true, force: true });
}

async function writePlacements(root: string, placements: readonly Placement[], owners: Record<Placement['owner'], Owner>, written: Written): Promise<void> {
  for (const { entry, path, owner } of placements) {
    const target = join(root, path);
    const dir = target.slice(0, target.lastIndexOf('/'));
    // Tor refuses service directories with any group or other bit; the relays' are made by the image already.
    if (!(await stat(dir).then(() => true, () => false))) {
      await ensureDir(dir, 0o700, owners[owner]);
      written.dirs.push(dir);
    } else if (owner === 'tor') await ensureDir(dir, 0o700, owners.tor);
    await atomicWrite(target, entry.content, entry.mode & 0o644, owners[owner]);
    written.files.push(target);
  }
}

/**
 * Restore into the card (a block device or an .img): check, then write. Returns the card's plan; the caller says
 * what was done and warns about the card the backup came from.
 */
export async function restoreCard(options: RestoreOptions): Promise<{ plan: BuildPlan; files: number; notes: string[] }> {
  const { card, backup, log } = options;
  const tmpDir = options.tmpDir ?? tmpdir();
  const resources = new Resources();
  let checked: { plan: BuildPlan; passwd: string; placements: Placement[]; notes: string[] };
  try {
    log(`checking ${card} (read-only)`);
    const root = await mountRoot(card, resources, true, tmpDir);
    const card_ = await checkCard(root, card);
    checked = { ...card_, ...placeBackup(backup.manifest, backup.entries, card_.plan) };
  } finally {
    await resources.releaseAll();
  }
  const owners = { tor: ownerOf(TOR_USER, checked.passwd), relay: ownerOf(checked.plan.relayUser, checked.passwd), root: { uid: 0, gid: 0 } };
  try {
    log(`writing ${checked.placements.length} files into ${card}`);
    const root = await mountRoot(card, resources, false, tmpDir);
    const written: Written = { files: [], dirs: [] };
    try {
      if (!(await present(join(root, STATE_DIR)))) written.dirs.push(join(root, STATE_DIR));
      await ensureDir(join(root, STATE_DIR), 0o700, owners.root);
      const record: RestoredRecord = {
        id: backup.manifest.id,
        createdAt: backup.manifest.createdAt,
        host: backup.manifest.host,
        simplexmq: backup.manifest.simplexmq,
        restoredAt: (options.now ?? new Date()).toISOString(),
        complete: false,
      };
      // First, as unfinished, and on the card before any key: a restore cut off from here on (Ctrl-C, a pulled
      // reader, a power cut) leaves a card that first boot and restore both refuse, never a card that mixes identities.
      const marker = join(root, STATE.restored);
      await atomicWrite(marker, `${JSON.stringify(record, null, 2)}\n`, 0o600);
      written.files.push(marker);
      await run('sync', ['-f', marker]);
      await writePlacements(root, checked.placements, owners, written);
      await run('sync', ['-f', marker]);
      // Last: a card whose record says complete has every file.
      await atomicWrite(marker, `${JSON.stringify({ ...record, complete: true }, null, 2)}\n`, 0o600);
      await run('sync', ['-f', marker]);
    } catch (error) {
      await takeBack(written);
      throw new UserError(`writing the backup into ${card} failed (${error instanceof Error ? error.message : String(error)}): every file and directory it wrote was taken back`);
    }
  } finally {
    await resources.releaseAll();
  }
  return { plan: checked.plan, files: checked.placements.length, notes: checked.notes };
}
