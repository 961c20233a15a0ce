import { Encrypter } from 'age-encryption';
import { pack } from 'tar-stream';
import type { StickFile } from './stick-writer.ts';

/**
 * Tar and age for what leaves the Pi encrypted: export.encrypt_to's secrets archive and the backups
 * (device/backup.ts). age-encryption is the TypeScript implementation by age's author; the results open with the
 * standard `age` CLI (`age -d -i KEY FILE | tar x`), so only the holder of the identity (or the passphrase) can
 * read them and any stick with the label may carry them.
 */

/** A tar member: its path, mode (0600 if not given), and bytes; a directory when `directory` is set. */
export interface TarMember {
  name: string;
  mode?: number;
  content?: Buffer;
  directory?: boolean;
}

/** A tar archive of the members, in order, each with the given time and no uid or user name of the Pi. */
export async function tarMembers(members: readonly TarMember[], mtime: Date): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const member of members) {
    if (member.directory) archive.entry({ name: `${member.name}/`, type: 'directory', mode: member.mode ?? 0o700, mtime, uid: 0, gid: 0 });
    else archive.entry({ name: member.name, mode: member.mode ?? 0o600, mtime, uid: 0, gid: 0 }, member.content ?? Buffer.alloc(0));
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A tar archive of the files, in the given order, each 0600 in its 0700 directories, with the given time. */
export async function tarOf(files: readonly StickFile[], mtime: Date): Promise<Buffer> {
  const members: TarMember[] = [];
  const directories = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (directories.has(dir)) continue;
      directories.add(dir);
      members.push({ name: dir, directory: true });
    }
    members.push({ name: file.path, content: Buffer.isBuffer(file.content) ? file.content : Buffer.from(file.content) });
  }
  return tarMembers(members, mtime);
}

/** How something is age-encrypted: to one X25519 recipient (`age1…`), or with a passphrase (scrypt). */
export type AgeEncryption = { recipient: string } | { passphrase: string };

export async function ageEncrypt(encryption: AgeEncryption, data: Uint8Array): Promise<Uint8Array> {
  const encrypter = new Encrypter();
  if ('recipient' in encryption) encrypter.addRecipient(encryption.recipient);
  else encrypter.setPassphrase(encryption.passphrase);
  return encrypter.encrypt(data);
}

/** age-encrypt to one X25519 recipient (`age1…`). */
export async function encryptTo(recipient: string, data: Uint8Array): Promise<Uint8Array> {
  return ageEncrypt({ recipient }, data);
}
