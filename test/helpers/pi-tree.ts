import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fingerprintOf } from '../../builder/device/address.ts';
import { base32, newOnionKey, torPublicKeyFile, torSecretKeyFile } from '../../builder/device/onion.ts';
import { ADMIN_KEY_NAME, AUTHORIZED_CLIENTS, SELF_KEY_NAME, RELAY_KINDS, STATE, STATE_DIR, TOR_DIR, TOR_USER, authorizedClientLine } from '../../builder/plan/layout.ts';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { renderImageFiles } from '../../builder/render/render.ts';

/**
 * Synthetic Raspberry Pi root filesystems for the backup and restore tests: a Pi whose first boot made its relays'
 * identities (the files a real one has, made the way `smp-server init` and Tor make them: openssl for the CA and
 * server keys as test/fixtures/standin/standin.js does, Tor's own key file format for the onion services), and a
 * freshly flashed card (what the build writes into its image, its users, no identity yet) as an image with a FAT
 * partition 1 and an ext4 partition 2, made by the real sfdisk, mkfs.vfat and mke2fs.
 */

/** A secret of the Pi, as bytes that must never be found in the clear outside the Pi, the card and the backup. */
export interface Secret {
  name: string;
  bytes: Buffer;
}

/** A file the Pi has that a restore must put on the new card, and whose it must be there. */
export interface PiFile {
  /** Absolute, as on the Pi (the card's plan puts it at the same place). */
  path: string;
  owner: 'tor' | 'relay' | 'root';
  mode: number;
  content: Buffer;
}

export interface PiTree {
  root: string;
  /** Everything a restore writes, by the Pi's own path. */
  restored: PiFile[];
  /** Files on the Pi a restore must not write: the onion services' authorization files, XFTP's files in transit. */
  notRestored: string[];
  secrets: Secret[];
  /** Each relay's onion address, by relay name, and SSH's. */
  onions: Record<string, string>;
}

async function put(root: string, path: string, content: string | Buffer, mode: number): Promise<Buffer> {
  const full = join(root, path);
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, content);
  await chmod(full, mode);
  return Buffer.from(content);
}

/**
 * A key file's base64 lines, to look for as they are: each long enough to be this key's alone. `skip`: leading lines
 * that are not (an OpenSSH key's first line is the same in every ed25519 key, its second mostly the public key).
 */
function keyLines(pem: string, skip: number): string[] {
  return pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .slice(skip)
    .filter((l) => l.length >= 20);
}

/** The CA and server credentials as simplexmq's `init` makes them (Server/X509.hs via openssl, as the stand-in does). */
function credentials(dir: string, algorithm: 'ED25519' | 'ED448', cn: string): void {
  mkdirSync(dir, { recursive: true });
  const conf = (name: string, text: string) => writeFileSync(join(dir, name), text);
  conf('openssl_ca.conf', '[req]\ndistinguished_name = req_distinguished_name\nprompt = no\n\n[req_distinguished_name]\nCN = SMP server CA\nO = SimpleX\n\n[v3]\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\nbasicConstraints = critical,CA:true\n');
  conf('openssl_server.conf', `[req]\ndistinguished_name = req_distinguished_name\nprompt = no\n\n[req_distinguished_name]\nCN = ${cn}\n\n[v3]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature, nonRepudiation, keyAgreement\nextendedKeyUsage = serverAuth\n`);
  // Its chatter on stderr is kept out of the test's output; a failure still says it (execFileSync's error carries stderr).
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('genpkey', '-algorithm', algorithm, '-out', 'ca.key');
  openssl('req', '-new', '-x509', '-days', '999999', '-config', 'openssl_ca.conf', '-extensions', 'v3', '-key', 'ca.key', '-out', 'ca.crt');
  openssl('genpkey', '-algorithm', algorithm, '-out', 'server.key');
  openssl('req', '-new', '-config', 'openssl_server.conf', '-reqexts', 'v3', '-key', 'server.key', '-out', 'server.csr');
  openssl('x509', '-req', '-days', '999999', '-extfile', 'openssl_server.conf', '-extensions', 'v3', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt');
}

/** A password as `smp-server init` makes one: 32 random bytes, base64url with padding. */
const password = () => `${randomBytes(32).toString('base64url')}=`;

/**
 * The files of a Pi that ran its first boot with `plan`, under `root`: for each relay its onion service (with a
 * client's authorization file), its configuration directory (CA and server keys and certificates, fingerprint, INI
 * with a password) and, for SMP, its state (queue store, saved messages); SSH's onion service and host keys; the
 * Pi's client-authorization keys.
 */
export async function makePiTree(root: string, plan: BuildPlan): Promise<PiTree> {
  const restored: PiFile[] = [];
  const notRestored: string[] = [];
  const secrets: Secret[] = [];
  const onions: Record<string, string> = {};
  const file = async (path: string, content: string | Buffer, mode: number, owner: PiFile['owner']) => {
    restored.push({ path, owner, mode, content: await put(root, path, content, mode) });
  };

  const onionService = async (name: string, dir: string) => {
    const key = newOnionKey();
    onions[name] = key.address;
    const secretFile = torSecretKeyFile(key.seed);
    // The expanded secret key: what signs for the onion address.
    secrets.push({ name: `${name} onion secret key`, bytes: secretFile.subarray(32) });
    await file(join(dir, 'hs_ed25519_secret_key'), secretFile, 0o600, 'tor');
    await file(join(dir, 'hs_ed25519_public_key'), torPublicKeyFile(key.publicKey), 0o600, 'tor');
    await file(join(dir, 'hostname'), `${key.address}\n`, 0o600, 'tor');
    const auth = join(dir, AUTHORIZED_CLIENTS, 'alice.auth');
    await put(root, auth, authorizedClientLine(randomBytes(32).toString('hex').slice(0, 52).toUpperCase()), 0o600);
    notRestored.push(auth);
  };

  for (const relay of relaysOf(plan)) {
    await onionService(relay.name, relay.onion.dir);
    const cfg = join(root, relay.cfgPath);
    credentials(cfg, relay.kind === 'smp' ? 'ED25519' : 'ED448', onions[relay.name]!);
    const modes: Record<string, number> = { 'ca.key': 0o600, 'server.key': 0o600, 'ca.crt': 0o644, 'server.crt': 0o644, 'server.csr': 0o644, 'ca.srl': 0o644, 'openssl_ca.conf': 0o644, 'openssl_server.conf': 0o644 };
    for (const [name, mode] of Object.entries(modes)) await file(join(relay.cfgPath, name), await readFile(join(cfg, name)), mode, 'relay');
    for (const name of ['ca.key', 'server.key']) {
      for (const line of keyLines(await readFile(join(cfg, name), 'utf8'), 0)) secrets.push({ name: `${relay.name} ${name}`, bytes: Buffer.from(line) });
    }
    const fingerprint = fingerprintOf(await readFile(join(cfg, 'ca.crt'), 'utf8'));
    await file(join(relay.cfgPath, 'fingerprint'), `${fingerprint}\n`, 0o644, 'relay');
    const pw = password();
    secrets.push({ name: `${relay.name} password`, bytes: Buffer.from(pw) });
    const ini = `[STORE_LOG]\nenable = on\n\n[AUTH]\n${relay.kind === 'smp' ? 'new_queues' : 'new_files'} = on\ncreate_password = ${pw}\n\n[TRANSPORT]\nhost = ${onions[relay.name]}\nport = ${relay.localPort}\n`;
    await file(join(relay.cfgPath, RELAY_KINDS[relay.kind].iniFile), ini, 0o640, 'relay');
    if (relay.kind === 'smp') {
      const message = `undelivered message in ${relay.name}: ${randomBytes(24).toString('hex')}`;
      secrets.push({ name: `${relay.name} saved message`, bytes: Buffer.from(message) });
      await file(join(relay.logPath, `${RELAY_KINDS.smp.binary}-store.log`), `{"queue":"${randomBytes(16).toString('base64url')}"}\n`, 0o600, 'relay');
      for (const saved of relay.savedFiles) await file(saved, `${message}\n`, 0o600, 'relay');
    } else if ('filesPath' in relay && relay.filesPath) {
      // A file in transit: up to the quota, gone within 48 hours anyway; never in a backup.
      const inTransit = join(relay.filesPath, randomBytes(8).toString('hex'));
      await put(root, inTransit, randomBytes(4096), 0o600);
      notRestored.push(inTransit);
    }
  }
  if (plan.ssh.onion) await onionService('ssh', plan.ssh.onion.dir);
  const hostKey = join(root, 'etc/ssh/ssh_host_ed25519_key');
  await mkdir(dirname(hostKey), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@pi', '-f', hostKey]);
  // The first two lines of an OpenSSH key are the same in every ed25519 key, and the public key: not secrets.
  for (const line of keyLines(await readFile(hostKey, 'utf8'), 2)) secrets.push({ name: 'ssh host key', bytes: Buffer.from(line) });
  await file('/etc/ssh/ssh_host_ed25519_key', await readFile(hostKey), 0o600, 'root');
  await file('/etc/ssh/ssh_host_ed25519_key.pub', await readFile(`${hostKey}.pub`), 0o644, 'root');
  // As device/client-auth.ts writes them: the members' keys as a list, the Pi's own relays' and the admin's as one key
  // each, in Tor's upper-case base32.
  const clientKey = (name: string) => ({ name, publicKey: base32(randomBytes(32)).toUpperCase(), privateKey: base32(randomBytes(32)).toUpperCase() });
  for (const [path, keys] of [
    [STATE.clientKeys, [clientKey('client-1'), clientKey('client-2')]],
    [STATE.selfClientKey, clientKey(SELF_KEY_NAME)],
    [STATE.adminClientKey, clientKey(ADMIN_KEY_NAME)],
  ] as const) {
    for (const key of [keys].flat()) secrets.push({ name: `client key in ${path}`, bytes: Buffer.from(key.privateKey) });
    await file(path, `${JSON.stringify(keys, null, 2)}\n`, 0o600, 'root');
  }
  return { root, restored, notRestored, secrets, onions };
}

/** The card's own users, with numbers the host does not have: a restore that took the host's passwd would show. */
export interface CardUsers {
  tor: { uid: number; gid: number };
  relay: { uid: number; gid: number };
}

/**
 * The root filesystem of a card freshly flashed with an image built from `plan`: what the build's configure stage
 * writes into it (render/render.ts renderImageFiles: its plan, the relays' directories, the recipe's authorization
 * files, each with its owner and mode), with the owners' numbers from the card's own /etc/passwd, and Tor's
 * directory as Debian's tor package makes it. No identity yet. `booted`: its first boot finished.
 */
export async function makeCardTree(root: string, plan: BuildPlan, users: CardUsers, options: { booted?: boolean; cutRestore?: boolean } = {}): Promise<void> {
  const ids: Record<string, { uid: number; gid: number }> = { root: { uid: 0, gid: 0 }, [TOR_USER]: users.tor, [plan.relayUser]: users.relay };
  const id = (name: string) => {
    const found = ids[name];
    if (!found) throw new Error(`the card has no user ${name}; add it to makeCardTree`);
    return found;
  };
  await put(
    root,
    '/etc/passwd',
    [
      'root:x:0:0:root:/root:/bin/bash',
      `${TOR_USER}:x:${users.tor.uid}:${users.tor.gid}::${TOR_DIR}:/bin/false`,
      `${plan.relayUser}:x:${users.relay.uid}:${users.relay.gid}::/nonexistent:/usr/sbin/nologin`,
      '',
    ].join('\n'),
    0o644,
  );
  await mkdir(join(root, 'etc/ssh'), { recursive: true, mode: 0o755 });
  await mkdir(join(root, TOR_DIR), { recursive: true });
  await chmod(join(root, TOR_DIR), 0o2700);
  await chown(join(root, TOR_DIR), users.tor.uid, users.tor.gid);
  for (const entry of await renderImageFiles(plan)) {
    const path = join(root, entry.path);
    await mkdir(dirname(path), { recursive: true });
    if (entry.kind === 'symlink') {
      await symlink(entry.target!, path);
      continue;
    }
    if (entry.kind === 'dir') await mkdir(path, { recursive: true });
    else await writeFile(path, entry.content!);
    await chmod(path, entry.mode);
    await chown(path, id(entry.owner).uid, id(entry.group).gid);
  }
  if (options.booted) {
    await mkdir(join(root, STATE_DIR), { recursive: true, mode: 0o700 });
    await put(root, STATE.firstbootDone, '', 0o644);
  }
  if (options.cutRestore) {
    // What a restore cut off halfway leaves: its record, not yet complete.
    await mkdir(join(root, STATE_DIR), { recursive: true, mode: 0o700 });
    await put(root, STATE.restored, JSON.stringify({ id: 'f'.repeat(32), createdAt: '2026-01-01T00:00:00.000Z', host: 'pi', simplexmq: '6.5.2', restoredAt: '2026-01-02T00:00:00.000Z', complete: false }), 0o600);
  }
}

/** The card's partitions, in 512-byte sectors: a FAT boot partition and the root filesystem, as raspberryPiLayout wants. */
const BOOT = { start: 2048, size: 16384 };
export const ROOT_START = BOOT.start + BOOT.size;
const CARD_BYTES = 40 * 1024 * 1024;

/** A card image of the tree: partition table by sfdisk, FAT by mkfs.vfat, ext4 by `mke2fs -d` (owners and modes kept). */
export function makeCardImage(image: string, tree: string): void {
  execFileSync('truncate', ['-s', String(CARD_BYTES), image]);
  execFileSync('sfdisk', ['--quiet', image], { input: `label: dos\nstart=${BOOT.start}, size=${BOOT.size}, type=c\nstart=${ROOT_START}, type=83\n` });
  execFileSync('mkfs.vfat', ['--offset', String(BOOT.start), image, String(BOOT.size / 2)], { stdio: 'ignore' });
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, '-E', `offset=${ROOT_START * 512}`, image, `${(CARD_BYTES - ROOT_START * 512) / 1024}k`], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Run `read` with the card's root filesystem mounted read-only (its own read-only loop device, journal not
 * replayed), found by the card's partition table as sfdisk reads it; detached again whatever happens.
 */
export async function withCardRoot<T>(image: string, mountPoint: string, read: (root: string) => Promise<T>): Promise<T> {
  const table = JSON.parse(execFileSync('sfdisk', ['--json', image]).toString()) as { partitiontable: { partitions: Array<{ start: number; size: number }> } };
  const root = table.partitiontable.partitions[1]!;
  const device = execFileSync('losetup', ['--find', '--show', '--read-only', '--offset', String(root.start * 512), '--sizelimit', String(root.size * 512), image]).toString().trim();
  try {
    await mkdir(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'ext4', '-o', 'ro,noload', device, mountPoint]);
    try {
      return await read(mountPoint);
    } finally {
      execFileSync('umount', [mountPoint]);
    }
  } finally {
    execFileSync('losetup', ['--detach', device]);
  }
}
