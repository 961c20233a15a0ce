import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_MEMBER, ROLE, SECRETS_MEMBER } from '../../builder/backup/format.ts';
import { type PauseRelay, collectBackup, sealBackup } from '../../builder/device/backup.ts';
import type { RestoredRecord } from '../../builder/device/restored.ts';
import { sha256File } from '../../builder/hash.ts';
import { AUTHORIZED_CLIENTS, STATE, TOR_DIR } from '../../builder/plan/layout.ts';
import { type BuildPlan, resolvePlan } from '../../builder/plan/plan.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { renderImageFiles } from '../../builder/render/render.ts';
import { decryptBackup, openBackup } from '../../builder/restore/read-backup.ts';
import { REPO, TEST_CACHE, cli, isRoot, scratch } from '../helpers/env.ts';
import { type CardUsers, type PiTree, type Secret, makeCardImage, makeCardTree, makePiTree, ROOT_START, withCardRoot } from '../helpers/pi-tree.ts';

/**
 * Issue 14 on the owner's computer, with real tools and no VM: a Pi's identities (a synthetic root filesystem made
 * the way first boot and simplexmq's init make them) backed up by the device's own code, the backup opened with the
 * standard age CLI, and restored by the real `simplex-pi restore` into small card images (real partition table,
 * FAT and ext4, attached to loop devices by the code under test). What the card holds afterwards is read by
 * mounting it here, read-only, not through the code under test. The VM test (test/e2e/boot.test.ts) proves that a
 * restored card boots with those identities; this one covers every refusal and every file, quickly.
 */

/** The file started here: a file that changed since cannot be older than this test's secrets (they are made new below). */
const STARTED = Date.now() - 2000;

const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnJ8ysgqH1uM4YvBwCAuUnd8fV6qNH4q2yOc7lEJa9b a@b';
/** The Pi's recipe; the new card's names a client key (its image carries that key's authorization files). */
const recipe = (smp: number, clientKeys = '') =>
  `name: kitchen\nsmp: { instances: ${smp} }\nxftp: { enabled: true }\nadmin: { user: admin, ssh: { over_tor: true, authorized_keys: ["${SSH_KEY}"] } }\n${clientKeys}`;
const CARD_CLIENT_KEYS = `tor: { client_auth: { keys: [{ name: bob, public_key: ${'B'.repeat(52)} }] } }\n`;

/** The card's own users: numbers this host has for nobody (checked below), so a restore that used the host's passwd shows. */
const CARD_USERS: CardUsers = { tor: { uid: 3901, gid: 3911 }, relay: { uid: 3902, gid: 3912 } };

const PASSPHRASE = 'correct horse battery staple 14';

/** The CLI with a line on stdin, as a script gives the passphrase (cli() gives none). */
async function cliWithInput(args: string[], input: string, env: Record<string, string>) {
  const result = await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), ...args], { cwd: REPO, reject: false, all: true, input, env: { CI: '1', ...env } });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), all: String(result.all) };
}

/** Loop devices still backed by the file: the restore must detach every one it attached, refused or not. */
function loopsOf(file: string): string {
  return execFileSync('losetup', ['--associated', file]).toString().trim();
}

/** Read in pieces of this size; a piece that is all zeros (most of a disk image) holds no secret and is not searched. */
const PIECE = 64 << 10;
const ZEROS = Buffer.alloc(PIECE);

/**
 * Which secrets (by index) stand in the file's bytes. Each non-zero piece is searched together with `longest - 1`
 * bytes on either side, so a secret across pieces or reads is found; one lying wholly in zeros would be zeros.
 */
async function secretsInFile(path: string, secrets: readonly Buffer[]): Promise<Set<number>> {
  const found = new Set<number>();
  const overlap = Math.max(...secrets.map((s) => s.length)) - 1;
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(overlap + 128 * PIECE);
    let kept = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, kept, buffer.length - kept, null);
      if (!bytesRead) break;
      const end = kept + bytesRead;
      for (let at = kept; at < end; at += PIECE) {
        const piece = buffer.subarray(at, Math.min(at + PIECE, end));
        // The first piece of a read is always searched: it carries the end of a secret that began in the read before.
        if (at !== kept && piece.equals(ZEROS.subarray(0, piece.length))) continue;
        const window = buffer.subarray(Math.max(0, at - overlap), Math.min(end, at + PIECE + overlap));
        secrets.forEach((secret, i) => {
          if (!found.has(i) && window.includes(secret)) found.add(i);
        });
      }
      kept = Math.min(overlap, end);
      buffer.copy(buffer, 0, end - kept, end);
    }
  } finally {
    await handle.close();
  }
  return found;
}

/**
 * Files below the temporary directories that hold one of the secrets, by their bytes. Only files whose inode changed
 * since this test file started are read: the secrets are made new by this run, so nothing older can hold them, and
 * ctime (unlike mtime, which an archive extractor sets back) cannot be set back; this keeps the scan off earlier
 * runs' leftovers. Links are not followed, and another filesystem mounted below a root (someone's image) is not
 * entered.
 */
async function secretsInTemporaryFiles(roots: readonly string[], secrets: readonly Secret[], exclude: readonly string[]): Promise<string[]> {
  const excluded = await Promise.all(exclude.map((e) => realpath(e).catch(() => e)));
  const skip = (path: string) => excluded.some((e) => path === e || path.startsWith(`${e}/`));
  const hits: string[] = [];
  const walk = async (dir: string, device: number): Promise<void> => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      if (skip(path)) continue;
      const info = await lstat(path).catch(() => undefined);
      if (!info || info.dev !== device) continue;
      if (info.isDirectory()) await walk(path, device);
      else if (info.isFile() && info.size > 0 && info.ctimeMs >= STARTED) {
        // A file another program removes meanwhile is no finding.
        const found = await secretsInFile(path, secrets.map((s) => s.bytes)).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return new Set<number>();
          throw error;
        });
        for (const i of found) hits.push(`${path}: ${secrets[i]!.name}`);
      }
    }
  };
  const seen = new Set<string>();
  for (const root of roots) {
    const real = await realpath(root).catch(() => undefined);
    if (!real || seen.has(real)) continue;
    seen.add(real);
    await walk(real, (await stat(real)).dev);
  }
  return hits.sort();
}

describe.runIf(isRoot)('backing up a Pi and restoring it onto a new card', () => {
  /** The Pi's plan, and the new card's: the same relays, another client key. */
  let plan3: BuildPlan;
  let cardPlan3: BuildPlan;
  let pi: PiTree;
  let piDir: string;
  let cardsDir: string;
  let work: string;
  /** XDG_STATE_HOME of the CLI: where restore notes which backup went onto which card. */
  let state: string;
  let identity: string;
  let stranger: string;
  let recipient: string;
  let backupFile: string;
  let backup: Awaited<ReturnType<typeof sealBackup>>;
  let passphraseFile: string;
  const paused: string[] = [];
  const cards: Record<string, string> = {};
  /** The real CLI, as the owner runs it; what restore notes of each card stays in this test's directory. */
  const simplexPi = (args: string[]) => cli(args, { env: { XDG_STATE_HOME: state } });

  beforeAll(async () => {
    // The card's users must not be the host's: ownerOf(…) without the card's passwd would read the host's.
    const hostPasswd = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':'));
    for (const { uid, gid } of Object.values(CARD_USERS)) expect(hostPasswd.some((f) => Number(f[2]) === uid || Number(f[3]) === gid)).toBe(false);

    plan3 = resolvePlan(parseRecipe(recipe(3), 'r.yaml'));
    cardPlan3 = resolvePlan(parseRecipe(recipe(3, CARD_CLIENT_KEYS), 'r.yaml'));
    const cardPlan2 = resolvePlan(parseRecipe(recipe(2, CARD_CLIENT_KEYS), 'r.yaml'));
    piDir = await scratch('backup-pi');
    pi = await makePiTree(piDir, plan3);

    work = await scratch('backup-work');
    state = await scratch('backup-state');
    identity = join(work, 'owner.agekey');
    stranger = join(work, 'stranger.agekey');
    execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
    execFileSync('age-keygen', ['-o', stranger], { stdio: 'ignore' });
    recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();

    // The device's own code reads the Pi: SMP relays are paused while their files are read (they save messages at a stop).
    const pause: PauseRelay = async (relay) => {
      paused.push(`stop ${relay.name}`);
      return async () => {
        paused.push(`start ${relay.name}`);
      };
    };
    backup = await sealBackup(await collectBackup(plan3, { root: piDir, pause, now: new Date('2026-03-01T12:00:00Z') }), { recipient });
    backupFile = join(work, 'simplex-pi-backup-kitchen.tar');
    await writeFile(backupFile, backup.file);
    // Another backup of the same Pi, with a passphrase (age's scrypt at its default work factor: about a second).
    passphraseFile = join(work, 'simplex-pi-backup-kitchen-passphrase.tar');
    await writeFile(passphraseFile, (await sealBackup(await collectBackup(plan3, { root: piDir }), { passphrase: PASSPHRASE })).file);

    cardsDir = await scratch('backup-cards');
    const card = async (name: string, plan: BuildPlan, options: { booted?: boolean; cutRestore?: boolean } = {}) => {
      const tree = join(cardsDir, `${name}-tree`);
      await makeCardTree(tree, plan, CARD_USERS, options);
      cards[name] = join(cardsDir, `${name}.img`);
      makeCardImage(cards[name]!, tree);
    };
    await card('fresh', cardPlan3);
    await card('refusals', cardPlan3);
    await card('second', cardPlan3);
    await card('booted', cardPlan3, { booted: true });
    await card('two-smp', cardPlan2);
    await card('cut-restore', cardPlan3, { cutRestore: true });
    // The same relays behind another onion port: every address would change.
    await card('other-port', resolvePlan(parseRecipe(`${recipe(3, CARD_CLIENT_KEYS)}smp: { instances: 3, onion_port: 443 }\n`.replace(/^smp: \{ instances: 3 \}\n/m, ''), 'r.yaml')));
    // A card that ran and lost power: its journal still to replay (what the read-only check could not see).
    await card('crashed', cardPlan3);
    const loop = execFileSync('losetup', ['--find', '--show', '--offset', String(ROOT_START * 512), cards.crashed!]).toString().trim();
    try {
      execFileSync('debugfs', ['-w', '-R', 'feature needs_recovery', loop], { stdio: 'ignore' });
    } finally {
      execFileSync('losetup', ['--detach', loop]);
    }
  }, 60_000);

  it('seals the backup so that the standard age CLI opens it with the owner\'s identity, and it holds every relay\'s keys', async () => {
    // SMP relays only, each started again right after its files were read.
    expect(paused).toEqual(plan3.smp.instances.flatMap((r) => [`stop ${r.name}`, `start ${r.name}`]));
    const out = join(work, 'opened');
    await mkdir(out);
    execFileSync('tar', ['-xf', backupFile, '-C', out]);
    expect((await readdir(out)).sort()).toEqual([SECRETS_MEMBER, MANIFEST_MEMBER].sort());
    // Decrypted into memory only (age's stdout): never a file with the keys in the clear, which the scan below would find.
    const inner = execFileSync('age', ['-d', '-i', identity, join(out, SECRETS_MEMBER)], { maxBuffer: 64 << 20 });
    const members = execFileSync('tar', ['-t', '-f', '-'], { input: inner }).toString().trim().split('\n');
    const member = (name: string) => execFileSync('tar', ['-xO', '-f', '-', name], { input: inner, maxBuffer: 64 << 20 });
    const onPi = (path: string) => readFileSync(join(piDir, path));
    for (const relay of relaysOf(plan3)) {
      expect(member(`${ROLE.relayOnion(relay.name)}/hs_ed25519_secret_key`)).toEqual(onPi(join(relay.onion.dir, 'hs_ed25519_secret_key')));
      expect(member(`${ROLE.relayConfig(relay.name)}/ca.key`)).toEqual(onPi(join(relay.cfgPath, 'ca.key')));
      expect(member(`${ROLE.relayConfig(relay.name)}/server.key`)).toEqual(onPi(join(relay.cfgPath, 'server.key')));
    }
    for (const saved of plan3.smp.instances[0]!.savedFiles) expect(members).toContain(`${ROLE.relayState(plan3.smp.instances[0]!.name)}/${saved.slice(saved.lastIndexOf('/') + 1)}`);
    expect(members).toContain(`${ROLE.sshOnion}/hs_ed25519_secret_key`);
    expect(members).toContain(`${ROLE.sshHostKeys}/ssh_host_ed25519_key`);
    // XFTP's files in transit are not in it (gigabytes, gone in 48 hours), nor has it a state directory.
    expect(members.filter((m) => m.startsWith(`relays/${plan3.xftp!.name}/state`))).toEqual([]);
    // The manifest inside is the one outside, byte for byte, and counts the files.
    expect(member(MANIFEST_MEMBER)).toEqual(await readFile(join(out, MANIFEST_MEMBER)));
    expect(members.length - 1).toBe(backup.manifest.files);
    expect(backup.manifest).toMatchObject({ encryption: 'recipient', recipe: 'kitchen', simplexmq: plan3.simplexmq.version, ssh: { onion: pi.onions.ssh } });
    expect(backup.manifest.relays.map((r) => [r.name, r.onion])).toEqual(relaysOf(plan3).map((r) => [r.name, pi.onions[r.name]]));
    // Not one secret stands in the backup file in the clear (the manifest outside is readable without a key).
    expect([...(await secretsInFile(backupFile, pi.secrets.map((s) => s.bytes)))]).toEqual([]);
    // Another identity cannot open it.
    expect(() => execFileSync('age', ['-d', '-i', stranger, join(out, SECRETS_MEMBER)], { stdio: 'pipe' })).toThrow(/no identity matched/);
  });

  it('backup-info shows what the backup is, each relay\'s onion and fingerprint, without any key', async () => {
    const info = await simplexPi(['backup-info', backupFile]);
    expect(info.exitCode, info.all).toBe(0);
    expect(info.stdout).toContain(`Backup ${backup.manifest.id}`);
    expect(info.stdout).toContain('to a recipient key (open with --identity)');
    for (const relay of backup.manifest.relays) expect(info.stdout).toMatch(new RegExp(`\\b${relay.name} +${relay.onion}  fingerprint ${relay.fingerprint.replace(/[-_=]/g, '\\$&')}\\n`));
    expect(info.stdout).toContain(`ssh        ${pi.onions.ssh}`);
    for (const secret of pi.secrets) expect(info.all, secret.name).not.toContain(secret.bytes.toString('latin1'));
    expect(info.all).not.toMatch(/AGE-SECRET-KEY|PRIVATE KEY/);
    // A file that is not there is named as it was given (backup-info has no --backup option).
    const nowhere = join(work, 'no-such-backup.tar');
    const missing = await simplexPi(['backup-info', nowhere]);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toContain(`error: ${nowhere}: no such file`);
    expect(missing.stderr).not.toContain('--backup');
  });

  it('restore puts every relay\'s identity, configuration and state on a fresh card, owned by the card\'s users, and warns loudly', async () => {
    const card = cards.fresh!;
    const restored = await simplexPi(['restore', '--backup', backupFile, '--card', card, '--identity', identity]);
    expect(restored.exitCode, restored.all).toBe(0);
    expect(restored.stdout).toContain(`restore: done in`);
    expect(restored.stdout).toContain(`files of backup ${backup.manifest.id} are on ${card}`);
    // The loud part: the old Pi stays off for good, and the image now holds every key.
    expect(restored.stdout).toContain('!! The Pi this backup came from must stay OFF for good, and no other card may be restored from it');
    expect(restored.stdout).toContain(`!! ${card} now holds every key of the relays (now readable by root only): flash it, then delete it. Never share or publish it.`);
    expect((await stat(card)).mode & 0o777).toBe(0o600);
    expect(restored.stdout).toContain('!! Anyone who knows your age1… recipient can make a backup that opens with your key. Check that the onion addresses above are the ones your group uses.');
    expect(restored.stdout).not.toContain('You restored this same backup before');
    expect(loopsOf(card)).toBe('');

    const owners = { tor: CARD_USERS.tor, relay: CARD_USERS.relay, root: { uid: 0, gid: 0 } };
    await withCardRoot(card, join(work, 'mnt-fresh'), async (root) => {
      for (const file of pi.restored) {
        const info = await lstat(join(root, file.path)).catch(() => undefined);
        expect(info?.isFile(), `${file.path} on the card`).toBe(true);
        expect({ path: file.path, uid: info!.uid, gid: info!.gid, mode: info!.mode & 0o7777 }).toEqual({ path: file.path, ...owners[file.owner], mode: file.mode });
        expect((await readFile(join(root, file.path))).equals(file.content), `${file.path} has the Pi's bytes`).toBe(true);
      }
      // Tor refuses an onion service directory that is not its own, or has any group or other bit.
      for (const dir of [...relaysOf(plan3).map((r) => r.onion.dir), plan3.ssh.onion!.dir]) {
        const info = await stat(join(root, dir));
        expect([dir, info.uid, info.gid, info.mode & 0o7777]).toEqual([dir, CARD_USERS.tor.uid, CARD_USERS.tor.gid, 0o700]);
      }
      // Nothing else in Tor's directory but the image's own authorization files, as they were: the backup's are not
      // restored (first boot writes them again from the Pi's keys and the new recipe, so a client key the new recipe
      // dropped stays dropped).
      const imageAuth = (await renderImageFiles(cardPlan3)).filter((e) => e.kind === 'file' && e.path.startsWith(`${TOR_DIR}/`));
      expect(imageAuth.length).toBe(relaysOf(cardPlan3).length);
      const underTor = (await readdir(join(root, TOR_DIR), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length));
      expect(underTor.sort()).toEqual([...pi.restored.filter((f) => f.owner === 'tor').map((f) => f.path), ...imageAuth.map((e) => e.path)].sort());
      for (const entry of imageAuth) {
        const info = await stat(join(root, entry.path));
        expect([entry.path, info.uid, info.mode & 0o7777, (await readFile(join(root, entry.path))).equals(entry.content!)]).toEqual([entry.path, CARD_USERS.tor.uid, entry.mode, true]);
      }
      expect(pi.notRestored.filter((p) => p.includes(`/${AUTHORIZED_CLIENTS}/`)).length).toBe(relaysOf(plan3).length + 1);
      for (const path of pi.notRestored) expect(await lstat(join(root, path)).catch(() => undefined), path).toBeUndefined();
      // Which backup, for first boot and `status`; root's only.
      const record = JSON.parse(await readFile(join(root, STATE.restored), 'utf8')) as RestoredRecord;
      expect(record).toMatchObject({ id: backup.manifest.id, createdAt: backup.manifest.createdAt, host: backup.manifest.host, simplexmq: backup.manifest.simplexmq });
      const recordInfo = await stat(join(root, STATE.restored));
      expect([recordInfo.uid, recordInfo.mode & 0o777]).toEqual([0, 0o600]);
    });

    // The same card again: refused, and not changed.
    const before = await sha256File(card);
    const again = await simplexPi(['restore', '--backup', backupFile, '--card', card, '--identity', identity]);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(`error: ${card} was already restored from backup ${backup.manifest.id}`);
    expect(again.stderr).toContain('flash the image again to restore another; nothing was written');
    expect(await sha256File(card)).toBe(before);
    expect(loopsOf(card)).toBe('');
  });

  it('a second card restored from the same backup is said to be the classic mistake', async () => {
    const card = cards.second!;
    const restored = await simplexPi(['restore', '--backup', backupFile, '--card', card, '--identity', identity]);
    expect(restored.exitCode, restored.all).toBe(0);
    expect(restored.stdout).toMatch(new RegExp(`!! You restored this same backup before, on \\S+, onto ${cards.fresh!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\. If that card runs, only one of them may\\.`));
  });

  it('refuses a damaged or altered backup, a missing or wrong identity and a wrong passphrase, each saying why, and leaves the card as flashed', async () => {
    const card = cards.refusals!;
    const flashed = await sha256File(card);
    const sealed = (await openBackup(backup.file, 'backup')).sealed;
    const sealedAt = backup.file.indexOf(sealed);
    expect(sealedAt).toBeGreaterThan(0);

    // One bit of the encrypted payload changed: age's authentication fails.
    const tampered = Buffer.from(backup.file);
    const flipped = sealedAt + sealed.length - 40;
    tampered.writeUInt8(tampered.readUInt8(flipped) ^ 0x01, flipped);
    const tamperedFile = join(work, 'tampered.tar');
    await writeFile(tamperedFile, tampered);
    // The outer manifest (readable without a key) names another onion for smp1: a swapped or doctored backup.
    const manifestText = `"onion": "${backup.manifest.relays[0]!.onion}"`;
    const at = backup.file.indexOf(manifestText);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(sealedAt);
    const altered = Buffer.from(backup.file);
    altered.write(manifestText.replace(/"onion": "(.)/, (_, c: string) => `"onion": "${c === 'a' ? 'b' : 'a'}`), at, 'latin1');
    const alteredFile = join(work, 'altered.tar');
    await writeFile(alteredFile, altered);

    const UNTOUCHED = 'nothing was written to the card';
    const attempts = [
      { what: 'tampered', run: () => simplexPi(['restore', '--backup', tamperedFile, '--card', card, '--identity', identity]), says: [`${tamperedFile} is damaged or was altered (age: `, UNTOUCHED] },
      { what: 'altered manifest', run: () => simplexPi(['restore', '--backup', alteredFile, '--card', card, '--identity', identity]), says: [`${alteredFile}: the manifest outside the encryption was changed`, UNTOUCHED] },
      { what: 'missing identity file', run: () => simplexPi(['restore', '--backup', backupFile, '--card', card, '--identity', join(work, 'typo.agekey')]), says: [`--identity ${join(work, 'typo.agekey')}: no such file`] },
      { what: 'wrong identity', run: () => simplexPi(['restore', '--backup', backupFile, '--card', card, '--identity', stranger]), says: [`${backupFile} was not encrypted to the key in ${stranger}`, UNTOUCHED] },
      { what: 'wrong passphrase', run: () => cliWithInput(['restore', '--backup', passphraseFile, '--card', card, '--passphrase'], 'not the passphrase at all\n', { XDG_STATE_HOME: state }), says: [`${passphraseFile}: the passphrase is wrong`, UNTOUCHED] },
      { what: 'passphrase for a recipient backup', run: () => cliWithInput(['restore', '--backup', backupFile, '--card', card, '--passphrase'], `${PASSPHRASE}\n`, { XDG_STATE_HOME: state }), says: [`${backupFile} was encrypted to a recipient key, not with a passphrase`, UNTOUCHED] },
    ];
    for (const attempt of attempts) {
      const result = await attempt.run();
      expect(result.exitCode, `${attempt.what}: ${result.all}`).not.toBe(0);
      expect(result.all, attempt.what).toContain(`error: ${attempt.says[0]}`);
      for (const words of attempt.says) expect(result.all, attempt.what).toContain(words);
      // A sentence, not a stack trace.
      expect(result.all, attempt.what).not.toContain('failed unexpectedly');
      expect(await sha256File(card), attempt.what).toBe(flashed);
    }
    // The right passphrase opens the same file: the refusal above was about the passphrase, not the file.
    const opened = await decryptBackup(await readFile(passphraseFile), { passphrase: PASSPHRASE }, passphraseFile);
    expect(opened.manifest.encryption).toBe('passphrase');
    expect(loopsOf(card)).toBe('');
  });

  it('refuses a card whose image has other relays, and a card that booted already, saying which, and changes neither', async () => {
    const two = cards['two-smp']!;
    const before = await sha256File(two);
    const mismatch = await simplexPi(['restore', '--backup', backupFile, '--card', two, '--identity', identity]);
    expect(mismatch.exitCode).not.toBe(0);
    expect(mismatch.stderr).toContain("error: the backup's relays do not match this card's image (recipe kitchen): nothing was written to the card.");
    expect(mismatch.stderr).toContain(`in the backup but not on the card: ${plan3.smp.instances[2]!.name} (smp)`);
    expect(mismatch.stderr).not.toContain('on the card but not in the backup');
    expect(await sha256File(two)).toBe(before);

    const booted = cards.booted!;
    const bootedBefore = await sha256File(booted);
    const refused = await simplexPi(['restore', '--backup', backupFile, '--card', booted, '--identity', identity]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain(`error: ${booted} has booted already: its first boot made identities of its own`);
    expect(refused.stderr).toContain('nothing was written');
    expect(await sha256File(booted)).toBe(bootedBefore);

    const crashed = cards.crashed!;
    const crashedBefore = await sha256File(crashed);
    const unclean = await simplexPi(['restore', '--backup', backupFile, '--card', crashed, '--identity', identity]);
    expect(unclean.exitCode).not.toBe(0);
    expect(unclean.stderr).toContain(`error: ${crashed}: its root filesystem was not cleanly unmounted, so the card has run`);
    expect(await sha256File(crashed)).toBe(crashedBefore);

    const cut = cards['cut-restore']!;
    const cutBefore = await sha256File(cut);
    const again = await simplexPi(['restore', '--backup', backupFile, '--card', cut, '--identity', identity]);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(`error: ${cut}: a restore of backup ${'f'.repeat(32)} (2026-01-02T00:00:00.000Z) was cut off before it finished: flash the image again`);
    expect(await sha256File(cut)).toBe(cutBefore);

    const port = cards['other-port']!;
    const portBefore = await sha256File(port);
    const moved = await simplexPi(['restore', '--backup', backupFile, '--card', port, '--identity', identity]);
    expect(moved.exitCode).not.toBe(0);
    expect(moved.stderr).toContain("error: this card's image gives the relays other onion ports than the backup's, so every address the group has would change");
    expect(moved.stderr).toContain(`${plan3.smp.instances[0]!.name}: onion port 5223 in the backup, 443 in this image`);
    expect(await sha256File(port)).toBe(portBefore);
    for (const card of [two, booted, crashed, cut, port]) expect(loopsOf(card)).toBe('');
  });

  it('leaves no key in the clear in the host\'s temporary directories', async () => {
    // The restores mounted each card in a directory of their own under the temporary directory: gone again.
    expect((await readdir(tmpdir())).filter((n) => n.startsWith('simplex-pi-restore-'))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(cardsDir);
    const roots = [tmpdir(), '/tmp', '/dev/shm', '/var/tmp'];
    // Left out: the test's own Pi and cards, which hold the keys by design, and the shared build cache.
    const exclude = [piDir, cardsDir, TEST_CACHE];
    // The scan can fail: a file written now below the temporary directory with secrets in it is found, among zeros
    // (pieces of zeros are passed over), across two pieces and across two reads.
    const decoy = join(await scratch('backup-decoy'), 'leak');
    const planted = [pi.secrets[0]!, pi.secrets.find((s) => s.name.endsWith('password'))!, pi.secrets.find((s) => s.name.endsWith('saved message'))!];
    const overlap = Math.max(...pi.secrets.map((s) => s.bytes.length)) - 1;
    const leak = Buffer.alloc(200 * PIECE);
    planted[0]!.bytes.copy(leak, PIECE - 10);
    planted[1]!.bytes.copy(leak, 3 * PIECE - 3);
    planted[2]!.bytes.copy(leak, overlap + 128 * PIECE - 5);
    await writeFile(decoy, leak);
    const hits = await secretsInTemporaryFiles(roots, pi.secrets, exclude);
    const where = await realpath(decoy);
    expect(hits).toEqual(planted.map((s) => `${where}: ${s.name}`).sort());
    await rm(decoy);
    // And every kind of secret is found where it is: in the Pi's own tree.
    const onPi = await secretsInTemporaryFiles([piDir], pi.secrets, []);
    expect(new Set(onPi.map((h) => h.slice(h.indexOf(': ') + 2)))).toEqual(new Set(pi.secrets.map((s) => s.name)));
  }, 60_000);
});
