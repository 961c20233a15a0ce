import { Encrypter } from 'age-encryption';
import { pack } from 'tar-stream';
import type { StickFile } from './stick-writer.ts';

/**
 * export.encrypt_to: the secret files as one tar archive, encrypted with age to the owner's X25519 recipient
 * (age-encryption, the TypeScript implementation by age's author; the result opens with the standard `age` CLI:
 * `age -d -i KEY FILE | tar x`). Only the holder of the identity can read it, so any stick with the
 * label may carry it.
 */

/** A tar archive of the files, in the given order, each 0600 with the given time. */
export async function tarOf(files: readonly StickFile[], mtime: Date): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  const directories = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (directories.has(dir)) continue;
      directories.add(dir);
      archive.entry({ name: `${dir}/`, type: 'directory', mode: 0o700, mtime });
    }
    archive.entry({ name: file.path, mode: 0o600, mtime }, Buffer.isBuffer(file.content) ? file.content : Buffer.from(file.content));
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** age-encrypt to one X25519 recipient (`age1…`). */
export async function encryptTo(recipient: string, data: Uint8Array): Promise<Uint8Array> {
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  return encrypter.encrypt(data);
}
