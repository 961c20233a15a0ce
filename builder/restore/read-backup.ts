import { Decrypter } from 'age-encryption';
import { type BackupEntry, type BackupManifest, MANIFEST_MEMBER, ONION_FILES, ROLE, SECRETS_MEMBER, manifestSchema } from '../backup/format.ts';
import { fingerprintOf } from '../device/address.ts';
import { onionAddress } from '../device/onion.ts';
import { UserError } from '../errors.ts';
import { parseJsonAs } from '../parse-json.ts';
import { untarFiles } from '../tar-files.ts';

/**
 * Reading a backup on the owner's computer (backup/format.ts): the manifest without any key, then the files,
 * decrypted in memory only. Nothing decrypted is ever written to a file here: restore-card.ts writes the files
 * straight into the card's root filesystem.
 */

/** How the backup is opened: the age identity file's keys (`AGE-SECRET-KEY-1…`), or the passphrase. */
export type BackupKey = { identities: string[]; source: string } | { passphrase: string };

function parseManifest(text: string, source: string): BackupManifest {
  return parseJsonAs(manifestSchema, text, source, { notJson: 'is not JSON: not a simplex-pi backup, or a damaged one', invalid: 'is not a manifest this version of simplex-pi reads (written by another program, or a newer simplex-pi)' });
}

/** The outer file: its manifest (unauthenticated: for telling backups apart) and the encrypted part. */
export async function openBackup(bytes: Uint8Array, source: string): Promise<{ manifest: BackupManifest; sealed: Buffer }> {
  const members = await untarFiles(bytes, source, 'a simplex-pi backup');
  const manifest = members.find((m) => m.name === MANIFEST_MEMBER);
  const sealed = members.find((m) => m.name === SECRETS_MEMBER);
  if (!manifest || !sealed) throw new UserError(`${source}: has no ${!manifest ? MANIFEST_MEMBER : SECRETS_MEMBER}: not a simplex-pi backup (its members: ${members.map((m) => m.name).join(', ') || 'none'})`);
  return { manifest: parseManifest(manifest.content.toString('utf8'), `${source}: ${MANIFEST_MEMBER}`), sealed: sealed.content };
}

/** Why age could not open it, in the owner's words: wrong key, wrong passphrase, or a file that was changed. */
function decryptError(error: unknown, key: BackupKey, manifest: BackupManifest, source: string): UserError {
  const message = error instanceof Error ? error.message : String(error);
  const untouched = 'nothing was written to the card';
  if (/no identity matched|no identities|incorrect passphrase|passphrase|scrypt/i.test(message)) {
    if ('passphrase' in key) {
      return new UserError(
        manifest.encryption === 'passphrase'
          ? `${source}: the passphrase is wrong; ${untouched}`
          : `${source} was encrypted to a recipient key, not with a passphrase: give --identity with the key's file; ${untouched}`,
      );
    }
    return new UserError(
      manifest.encryption === 'passphrase'
        ? `${source} was encrypted with a passphrase: use --passphrase instead of --identity; ${untouched}`
        : `${source} was not encrypted to the key in ${key.source}: give the identity whose recipient (age1…) the Pi's backup.recipient names; ${untouched}`,
    );
  }
  return new UserError(`${source} is damaged or was altered (age: ${message}); ${untouched}`);
}

/** Check what a relay needs is there and agrees with the manifest: the onion's key gives its address, the CA its fingerprint. */
function checkEntries(manifest: BackupManifest, entries: readonly BackupEntry[], source: string): void {
  const file = (path: string) => entries.find((e) => e.path === path)?.content;
  const need = (path: string) => {
    const content = file(path);
    if (!content?.length) throw new UserError(`${source}: ${path} is missing or empty: the backup is incomplete; nothing was written to the card`);
    return content;
  };
  const checkOnion = (role: string, onion: string, what: string) => {
    for (const name of ONION_FILES) need(`${role}/${name}`);
    const derived = onionAddress(need(`${role}/hs_ed25519_public_key`).subarray(32));
    if (derived !== onion) throw new UserError(`${source}: ${what}'s onion key gives ${derived}, not ${onion} as its manifest says; nothing was written to the card`);
  };
  for (const relay of manifest.relays) {
    checkOnion(ROLE.relayOnion(relay.name), relay.onion, relay.name);
    for (const name of ['ca.crt', 'fingerprint', 'server.key', 'server.crt']) need(`${ROLE.relayConfig(relay.name)}/${name}`);
    // Without its INI, first boot would run init again and make a new identity behind the old onion address.
    if (!entries.some((e) => e.path.startsWith(`${ROLE.relayConfig(relay.name)}/`) && e.path.endsWith('.ini') && e.content.length)) {
      throw new UserError(`${source}: ${relay.name}'s INI is missing: the backup is incomplete; nothing was written to the card`);
    }
    const fingerprint = fingerprintOf(need(`${ROLE.relayConfig(relay.name)}/ca.crt`).toString('utf8'));
    if (fingerprint !== relay.fingerprint || need(`${ROLE.relayConfig(relay.name)}/fingerprint`).toString('utf8').trim() !== fingerprint) {
      throw new UserError(`${source}: ${relay.name}'s CA certificate does not match the fingerprint in its manifest; nothing was written to the card`);
    }
  }
  if (manifest.ssh) checkOnion(ROLE.sshOnion, manifest.ssh.onion, 'ssh');
}

/**
 * Decrypt and check the whole backup, in memory: the manifest inside (authenticated by age) must be the one
 * outside, every relay's files must be there and agree with it.
 */
export async function decryptBackup(bytes: Uint8Array, key: BackupKey, source: string): Promise<{ manifest: BackupManifest; entries: BackupEntry[] }> {
  const { manifest: outer, sealed } = await openBackup(bytes, source);
  const decrypter = new Decrypter();
  if ('passphrase' in key) decrypter.addPassphrase(key.passphrase);
  else for (const identity of key.identities) decrypter.addIdentity(identity);
  let inner: Uint8Array;
  try {
    inner = await decrypter.decrypt(sealed);
  } catch (error) {
    throw decryptError(error, key, outer, source);
  }
  const members = await untarFiles(inner, `${source} (decrypted)`, 'a simplex-pi backup');
  const manifestMember = members.find((m) => m.name === MANIFEST_MEMBER);
  if (!manifestMember) throw new UserError(`${source}: the encrypted part has no ${MANIFEST_MEMBER}: not a simplex-pi backup; nothing was written to the card`);
  const manifest = parseManifest(manifestMember.content.toString('utf8'), `${source} (decrypted): ${MANIFEST_MEMBER}`);
  if (JSON.stringify(manifest) !== JSON.stringify(outer)) {
    throw new UserError(`${source}: the manifest outside the encryption was changed (it no longer matches the one inside); nothing was written to the card`);
  }
  const entries = members.filter((m) => m.name !== MANIFEST_MEMBER).map((m) => ({ path: m.name, mode: m.mode, content: m.content }));
  checkEntries(manifest, entries, source);
  return { manifest, entries };
}

/** The keys of an age identity file (`age-keygen -o`): its AGE-SECRET-KEY-1 lines. */
export function identitiesIn(text: string, source: string): string[] {
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('AGE-SECRET-KEY-1'));
  if (!keys.length) throw new UserError(`${source}: no age identity in it (a line AGE-SECRET-KEY-1…, as age-keygen writes); nothing was written to the card`);
  return keys;
}

/** The manifest as people read it: what the backup holds, for telling backups apart. */
export function describeManifest(manifest: BackupManifest): string {
  return [
    `Backup ${manifest.id}`,
    `  made:      ${manifest.createdAt} on ${manifest.host} (recipe ${manifest.recipe}), simplexmq ${manifest.simplexmq}`,
    `  encrypted: ${manifest.encryption === 'recipient' ? 'to a recipient key (open with --identity)' : 'with a passphrase (open with --passphrase)'}`,
    `  files:     ${manifest.files} (${manifest.bytes} bytes)`,
    ...manifest.relays.map((r) => `  ${r.name.padEnd(9)}  ${r.onion}  fingerprint ${r.fingerprint}`),
    ...(manifest.ssh ? [`  ssh        ${manifest.ssh.onion}`] : []),
  ].join('\n');
}
