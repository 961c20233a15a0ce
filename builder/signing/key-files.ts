import { chmod, link, readFile, rm, writeFile } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { exists } from '../exists.ts';
import { hiddenTemporary } from '../temporary-names.ts';
import { type PublicKey, type SecretKey, openSecretKey, parsePublicKey, parseSecretKeyFile } from './minisign.ts';
import { obtainPassword } from './password.ts';

/**
 * Create `path` with `content`, complete or not at all, and never over an existing file: written under a temporary
 * name, then hard-linked to its name (which fails if the name exists, unlike rename).
 */
export async function writeNewFile(path: string, content: string | Buffer, mode: number): Promise<void> {
  const temp = hiddenTemporary(path);
  try {
    await writeFile(temp, content, { mode, flag: 'wx' });
    // The mode given to open() is reduced by the umask; a secret key must be 0600 whatever the umask.
    await chmod(temp, mode);
    try {
      await link(temp, path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new UserError(`${path} already exists; it was left as it was`);
      // File systems without hard links (FAT, some network shares): exclusive create, still never replacing.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw error;
      await writeFile(path, content, { mode, flag: 'wx' });
      await chmod(path, mode);
    }
  } finally {
    await rm(temp, { force: true });
  }
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${what} ${path} does not exist`);
    if (code === 'EACCES') throw new UserError(`${what} ${path} cannot be read (permission denied)`);
    if (code === 'EISDIR') throw new UserError(`${what} ${path} is a directory, not a key file`);
    throw error;
  }
}

/** A bare base64 minisign public key (`RW…`, 56 characters), as opposed to the name of a key file. */
export function looksLikeBase64Key(value: string): boolean {
  return /^RW[A-Za-z0-9+/]{54}$/.test(value.trim());
}

/** `--pubkey`: a public key file, or the key itself in base64 (what `minisign -P` takes). */
export async function loadPublicKey(value: string): Promise<{ key: PublicKey; source: string }> {
  if (looksLikeBase64Key(value) && !(await exists(value))) {
    return { key: parsePublicKey(value, `the public key ${value}`), source: 'the given key' };
  }
  if (!(await exists(value))) {
    throw new UserError(`--pubkey ${value} is neither a public key file nor a minisign public key (a base64 line starting with "RW", 56 characters)`);
  }
  return { key: parsePublicKey(await readKeyFile(value, 'public key file'), `public key file ${value}`), source: value };
}

/** Read, decrypt (asking for the password when it is encrypted) and check a secret key file. */
export async function loadSecretKey(path: string, env: NodeJS.ProcessEnv = process.env): Promise<SecretKey> {
  const file = parseSecretKeyFile(await readKeyFile(path, 'secret key file'), path);
  const password = file.encrypted
    ? await obtainPassword({ purpose: `secret key ${path}`, confirm: false, otherwise: 'or use a key made with `simplex-pi keygen --unencrypted` (kept in a CI secret)' }, env)
    : undefined;
  return openSecretKey(file, password);
}
