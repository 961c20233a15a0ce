import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { sha256File } from '../hash.ts';
import { hiddenTemporary } from '../temporary-names.ts';
import { loadSecretKey } from './key-files.ts';
import {
  defaultTrustedComment,
  formatSignature,
  keyIdHex,
  parseSignature,
  publicKeyBase64,
  publicKeyOf,
  signMessage,
  verifySignature,
} from './minisign.ts';
import { SUMS_FILE, parseSha256Sums } from '../outputs/sha256sums.ts';
import { SIGNATURE_SUFFIX, signedFiles } from './signed-files.ts';

export interface SignOptions {
  dir: string;
  keyFile: string;
  print: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** The time put in the trusted comments. */
  now?: Date;
}

export interface SignResult {
  keyId: string;
  publicKey: string;
  /** The names that now have a `.minisig` next to them. */
  signed: string[];
}

async function releaseDirectory(path: string): Promise<string> {
  const dir = resolve(path);
  try {
    if (!(await stat(dir)).isDirectory()) throw new UserError(`${dir} is not a directory; sign takes a build's output directory`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${dir} does not exist; sign takes a build's output directory`);
    throw error;
  }
  return dir;
}

/**
 * Refuse to put a signature on a directory whose files do not match its SHA256SUMS: the signature would vouch
 * for files nobody has.
 */
async function checkSums(dir: string, sums: Buffer, print: (line: string) => void): Promise<void> {
  for (const entry of parseSha256Sums(sums.toString('utf8'), join(dir, SUMS_FILE))) {
    let actual: string;
    try {
      actual = await sha256File(join(dir, entry.name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UserError(`${entry.name} is listed in SHA256SUMS but missing from ${dir}; nothing was signed`);
      }
      throw error;
    }
    if (actual !== entry.sha256) {
      throw new UserError(`sha256 mismatch for ${entry.name}: expected ${entry.sha256}, got ${actual}; refusing to sign ${dir}, whose files do not match its SHA256SUMS (rebuild it, or find what changed the file)`);
    }
    print(`ok    ${entry.name} matches SHA256SUMS`);
  }
}

/** Write every signature under a temporary name first, then rename them all: a failure leaves no new .minisig. */
async function writeAll(files: ReadonlyArray<{ path: string; content: Buffer }>): Promise<void> {
  const staged: Array<{ temp: string; path: string }> = [];
  try {
    for (const file of files) {
      const temp = hiddenTemporary(file.path);
      staged.push({ temp, path: file.path });
      await writeFile(temp, file.content, { flag: 'wx', mode: 0o644 });
    }
    for (const { temp, path } of staged) await rename(temp, path);
  } finally {
    for (const { temp } of staged) await rm(temp, { force: true });
  }
}

/**
 * `simplex-pi sign DIR --key FILE`: check SHA256SUMS against the files, then sign SHA256SUMS and the Imager
 * repository files with a minisign key, writing `<file>.minisig` next to each.
 */
export async function signRelease(options: SignOptions): Promise<SignResult> {
  const dir = await releaseDirectory(options.dir);
  const sumsPath = join(dir, SUMS_FILE);
  let sums: Buffer;
  try {
    sums = await readFile(sumsPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`${dir} has no SHA256SUMS; sign signs a finished build's output directory (simplex-pi build writes SHA256SUMS last)`);
    }
    throw error;
  }
  // The key (and its password) first, so nobody waits for gigabytes to be hashed before being asked.
  const secretKey = await loadSecretKey(resolve(options.keyFile), options.env);
  const publicKey = publicKeyOf(secretKey);
  const keyId = keyIdHex(secretKey.keyId);
  options.print(`signing with key ID ${keyId}`);
  await checkSums(dir, sums, options.print);

  const entries = await readdir(dir, { withFileTypes: true });
  const names = signedFiles(entries.filter((e) => e.isFile()).map((e) => e.name));
  const now = options.now ?? new Date();
  const signatures: Array<{ path: string; content: Buffer }> = [];
  for (const name of names) {
    // SHA256SUMS is signed from the very bytes whose checksums were just checked.
    const bytes = name === SUMS_FILE ? sums : await readFile(join(dir, name));
    const signature = signMessage(secretKey, { bytes }, { trustedComment: defaultTrustedComment(name, now), untrustedComment: `signature from simplex-pi key ${keyId}` });
    const content = formatSignature(signature);
    const signatureName = `${name}${SIGNATURE_SUFFIX}`;
    // A signature that would not verify is a bug here; never publish one.
    verifySignature(publicKey, parseSignature(content, signatureName), { bytes }, { file: name, signature: signatureName });
    signatures.push({ path: join(dir, signatureName), content });
  }
  await writeAll(signatures);
  for (const name of names) options.print(`signed ${name} -> ${name}${SIGNATURE_SUFFIX}`);
  const base64 = publicKeyBase64(publicKey);
  options.print(`check with: simplex-pi verify ${dir} --pubkey ${base64}`);
  options.print(`        or: cd ${dir} && minisign -Vm SHA256SUMS -P ${base64} && sha256sum -c SHA256SUMS`);
  return { keyId, publicKey: base64, signed: names };
}
