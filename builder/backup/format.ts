import { z } from 'zod';

/**
 * A simplex-pi backup: one plain tar file holding
 * - MANIFEST_MEMBER: what the backup is (relays, onion addresses, fingerprints, simplexmq version, when), readable
 *   without any key so that backups can be told apart;
 * - SECRETS_MEMBER: an age file (open it with `age -d`), holding a tar of every file that makes the relays the same
 *   relays, under the roles below, plus the same manifest again. Restore takes the manifest from inside (which
 *   age authenticates) and refuses a backup whose outer manifest differs from it.
 * Written by the device (device/backup.ts), read by `simplex-pi restore` (restore/read-backup.ts). Roles, not the
 * image's paths: a newer image may put the relays elsewhere, and restore maps each role onto the card's own plan.
 */

export const BACKUP_FORMAT = 1;
export const MANIFEST_MEMBER = 'manifest.json';
export const SECRETS_MEMBER = 'identity.tar.age';

/** `simplex-pi-backup-<host>-<UTC time>.tar`: sorts by time, names the Pi. */
export function backupFileName(host: string, at: Date): string {
  return `simplex-pi-backup-${host}-${at.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '')}.tar`;
}

/**
 * Where each file sits inside the encrypted tar. A relay by its name in the server list (smp1, xftp): its onion
 * service's keys, its configuration directory (keys, certificates, INI) and its state directory (queue and message
 * stores); SSH's onion keys and host keys; the Pi's own client-authorization keys (state files, by base name).
 */
export const ROLE = {
  relayOnion: (relay: string) => `relays/${relay}/onion`,
  relayConfig: (relay: string) => `relays/${relay}/config`,
  relayState: (relay: string) => `relays/${relay}/state`,
  sshOnion: 'ssh/onion',
  sshHostKeys: 'ssh/host-keys',
  piState: 'pi',
} as const;

/** The onion service files that are its identity (Tor's HiddenServiceDir, v3). */
export const ONION_FILES = ['hs_ed25519_secret_key', 'hs_ed25519_public_key', 'hostname'] as const;

const onion = z.string().regex(/^[a-z2-7]{56}\.onion$/);

export const manifestSchema = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  /** Random, 128 bits: tells two backups apart, and a restore of the same backup twice (restore/restore-log.ts). */
  id: z.string().regex(/^[0-9a-f]{32}$/),
  createdAt: z.iso.datetime(),
  /** The Pi's host name and recipe name when it was made. */
  host: z.string(),
  recipe: z.string(),
  /** The simplexmq release the relays ran (the image's plan): restore migrates their INI when the new image's differs. */
  simplexmq: z.string(),
  encryption: z.enum(['recipient', 'passphrase']),
  /** Each relay's address but its password: restore refuses an image whose onion port differs (every address would). */
  relays: z.array(z.strictObject({ name: z.string(), kind: z.enum(['smp', 'xftp']), onion, port: z.number().int(), fingerprint: z.string() })),
  ssh: z.strictObject({ onion }).nullable(),
  /** Files inside the encrypted tar, and their bytes. */
  files: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
});

export type BackupManifest = z.infer<typeof manifestSchema>;

/** One file of the encrypted tar: its path by role (ROLE), its mode, its bytes. */
export interface BackupEntry {
  path: string;
  mode: number;
  content: Buffer;
}
