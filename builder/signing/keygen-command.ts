import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { exists } from '../exists.ts';
import { writeNewFile } from './key-files.ts';
import { formatPublicKeyFile, formatSecretKeyFile, generateKeyPair, keyIdHex, publicKeyBase64 } from './minisign.ts';
import { PASSWORD_ENV, obtainPassword } from './password.ts';

export interface KeygenOptions {
  /** A directory for minisign.key and minisign.pub (minisign's own default names). */
  out?: string;
  secretKey?: string;
  publicKey?: string;
  /** Store the secret key without a password, like `minisign -G -W`: for a CI secret store. */
  unencrypted: boolean;
  print: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface KeygenResult {
  secretKeyPath: string;
  publicKeyPath: string;
  publicKey: string;
  keyId: string;
}

function keyPaths(options: KeygenOptions): { secretKeyPath: string; publicKeyPath: string } {
  if (options.out !== undefined) {
    if (options.secretKey !== undefined || options.publicKey !== undefined) {
      throw new UserError('keygen takes either --out DIR, or --secret-key FILE and --public-key FILE, not both');
    }
    const dir = resolve(options.out);
    return { secretKeyPath: join(dir, 'minisign.key'), publicKeyPath: join(dir, 'minisign.pub') };
  }
  if (options.secretKey === undefined || options.publicKey === undefined) {
    throw new UserError('keygen needs --out DIR (for DIR/minisign.key and DIR/minisign.pub), or both --secret-key FILE and --public-key FILE');
  }
  const paths = { secretKeyPath: resolve(options.secretKey), publicKeyPath: resolve(options.publicKey) };
  if (paths.secretKeyPath === paths.publicKeyPath) throw new UserError('--secret-key and --public-key must be different files');
  return paths;
}

/**
 * `simplex-pi keygen`: a new minisign key pair. An existing key file is never replaced: a lost or overwritten
 * release key means users can no longer check updates against the key they already trust.
 */
export async function keygen(options: KeygenOptions): Promise<KeygenResult> {
  const { secretKeyPath, publicKeyPath } = keyPaths(options);
  for (const path of [secretKeyPath, publicKeyPath]) {
    if (await exists(path)) {
      throw new UserError(`${path} already exists; keygen never replaces a key file. Choose another --out (or other file names), or move the old key away yourself if you really mean to retire it`);
    }
  }
  const password = options.unencrypted
    ? undefined
    : await obtainPassword({ purpose: 'the new secret key', confirm: true, otherwise: 'or pass --unencrypted for a key kept in a CI secret store' }, options.env);
  const pair = generateKeyPair();
  const secretText = await formatSecretKeyFile(pair.secretKey, { password });
  await mkdir(dirname(secretKeyPath), { recursive: true, mode: 0o700 });
  await mkdir(dirname(publicKeyPath), { recursive: true });
  await writeNewFile(secretKeyPath, secretText, 0o600);
  try {
    await writeNewFile(publicKeyPath, formatPublicKeyFile(pair.publicKey), 0o644);
  } catch (error) {
    // Half a key pair is worse than none: remove the secret key this call has just created.
    await rm(secretKeyPath, { force: true });
    throw error;
  }
  const result = { secretKeyPath, publicKeyPath, publicKey: publicKeyBase64(pair.publicKey), keyId: keyIdHex(pair.publicKey.keyId) };
  const print = options.print;
  print(`Key ID ${result.keyId}`);
  print(`secret key: ${secretKeyPath} (mode 0600, ${password === undefined ? 'NOT encrypted: keep it only in a secret store' : 'encrypted with your password'}) - keep it secret and back it up`);
  print(`public key: ${publicKeyPath}`);
  print('');
  print('The public key, to publish where users find it (README, website):');
  print(`  ${result.publicKey}`);
  print('');
  print('Sign an output directory:  simplex-pi sign DIR --key ' + secretKeyPath + (password === undefined ? '' : `  (password from ${PASSWORD_ENV} or the prompt)`));
  print(`Users verify it with:      minisign -Vm SHA256SUMS -P ${result.publicKey}   or   simplex-pi verify DIR|URL --pubkey ${result.publicKey}`);
  return result;
}
