import { UserError } from '../errors.ts';
import { loadPublicKey } from './key-files.ts';
import { MinisignError, type PublicKey, keyIdHex, parseSignature, verifySignature } from './minisign.ts';
import { type ReleaseSource, openReleaseSource } from './release-source.ts';
import { SUMS_FILE, type SumsEntry, parseSha256Sums } from '../outputs/sha256sums.ts';
import { SIGNATURE_SUFFIX, signedFiles } from './signed-files.ts';

export interface VerifyOptions {
  /** A release directory, or the http(s) URL of one. */
  target: string;
  /** A public key file, or the base64 key itself. */
  pubkey: string;
  print: (line: string) => void;
}

export interface VerifyResult {
  keyId: string;
  files: string[];
  signatures: string[];
}

/** The `file:` and `timestamp:` fields of minisign's default trusted comment, when present. */
function commentFields(comment: string): { file?: string; signedAt?: string } {
  const field = (key: string) => comment.split('\t').find((part) => part.startsWith(`${key}:`))?.slice(key.length + 1);
  const timestamp = field('timestamp');
  const seconds = timestamp && /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : undefined;
  return { file: field('file'), signedAt: seconds === undefined ? undefined : new Date(seconds * 1000).toISOString().replace('.000Z', 'Z') };
}

/**
 * Verify one signed file; returns what to print on success, throws a MinisignError or UserError saying what failed.
 * The trusted comment's `file:` must name this file, so a valid signature of one release file cannot be passed
 * off as the signature of another.
 */
function checkSignature(publicKey: PublicKey, name: string, bytes: Buffer, signatureFile: Buffer): string {
  const signatureName = `${name}${SIGNATURE_SUFFIX}`;
  const { trustedComment } = verifySignature(publicKey, parseSignature(signatureFile, signatureName), { bytes }, { file: name, signature: signatureName });
  const { file, signedAt } = commentFields(trustedComment);
  if (file !== undefined && file !== name) {
    throw new MinisignError(`${signatureName} is a valid signature of a file named ${file}, not of ${name}: the files were swapped or renamed`);
  }
  return `${name} signature: key ID ${keyIdHex(publicKey.keyId)}${signedAt ? `, signed ${signedAt}` : ''} (trusted comment: ${trustedComment.replaceAll('\t', ' ')})`;
}

/**
 * `simplex-pi verify DIR|URL --pubkey KEY`: the signature of SHA256SUMS, then every file it lists (sha256, streamed),
 * then the signature of every signed Imager file. Prints one line per check; throws a UserError naming every
 * failure unless all of them passed.
 */
export async function verifyRelease(options: VerifyOptions): Promise<VerifyResult> {
  const { key: publicKey } = await loadPublicKey(options.pubkey);
  const source = await openReleaseSource(options.target);
  const { print } = options;
  const keyId = keyIdHex(publicKey.keyId);
  print(`verifying ${source.location} with key ID ${keyId}`);
  const failures: string[] = [];
  const fail = (message: string) => {
    failures.push(message);
    print(`FAIL  ${message}`);
  };
  const refuse = (message: string): never => {
    fail(message);
    throw new UserError(
      `verification of ${source.location} FAILED: ${message}\n` +
        'Nothing else was checked: without a valid signature on SHA256SUMS its checksums prove nothing. Do not use these files.',
    );
  };

  const entries = await verifiedSums(source, publicKey, print, refuse);
  const files: string[] = [];
  for (const entry of entries) {
    const actual = await source.sha256(entry.name);
    if (actual === undefined) fail(`${entry.name} is listed in SHA256SUMS but missing`);
    else if (actual !== entry.sha256) fail(`sha256 mismatch for ${entry.name}: expected ${entry.sha256}, got ${actual}`);
    else {
      files.push(entry.name);
      print(`ok    ${entry.name} sha256 ${actual}`);
    }
  }

  const listed = await source.list();
  if (listed === undefined) print('note  a URL cannot be listed: the signed Imager files checked are those named in SHA256SUMS');
  const candidates = signedFiles(listed ?? entries.map((e) => e.name)).filter((name) => name !== SUMS_FILE);
  const signatures = [SUMS_FILE];
  for (const name of candidates) {
    const bytes = await source.readSmall(name);
    if (bytes === undefined) continue; // listed in SHA256SUMS and missing: reported above
    const signatureFile = await source.readSmall(`${name}${SIGNATURE_SUFFIX}`);
    if (signatureFile === undefined) {
      fail(`${name}${SIGNATURE_SUFFIX} is missing`);
      continue;
    }
    try {
      print(`ok    ${checkSignature(publicKey, name, bytes, signatureFile)}`);
      signatures.push(name);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      fail(error.message);
    }
  }

  if (failures.length) {
    throw new UserError(
      `verification of ${source.location} FAILED (${failures.length} problem${failures.length === 1 ? '' : 's'}):\n` +
        failures.map((f) => `  - ${f}`).join('\n') +
        '\nDo not flash or use these files; get them again from the project, and check that the key is the published one.',
    );
  }
  print(`verified: SHA256SUMS is signed by key ID ${keyId}, ${files.length} file${files.length === 1 ? '' : 's'} match it, ${signatures.length} signature${signatures.length === 1 ? '' : 's'} checked`);
  return { keyId, files, signatures };
}

async function verifiedSums(source: ReleaseSource, publicKey: PublicKey, print: (line: string) => void, refuse: (message: string) => never): Promise<SumsEntry[]> {
  const signatureName = `${SUMS_FILE}${SIGNATURE_SUFFIX}`;
  const sums = await source.readSmall(SUMS_FILE);
  if (sums === undefined) refuse(`${SUMS_FILE} is missing`);
  const signature = await source.readSmall(signatureName);
  if (signature === undefined) refuse(`${signatureName} is missing`);
  try {
    print(`ok    ${checkSignature(publicKey, SUMS_FILE, sums!, signature!)}`);
    return parseSha256Sums(sums!.toString('utf8'), SUMS_FILE);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    return refuse(error.message);
  }
}
