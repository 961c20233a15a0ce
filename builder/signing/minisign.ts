import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { blake2b as nobleBlake2b } from '@noble/hashes/blake2.js';
import { UserError } from '../errors.ts';
import { SCRYPT_SENSITIVE, type ScryptLimits, pwhashScryptSalsa208Sha256 } from './libsodium-scrypt.ts';

/**
 * The minisign formats (https://jedisct1.github.io/minisign/), written and read with Node's crypto (and
 * @noble/hashes for the one BLAKE2b Node lacks) so that signing and verifying need no external program, yet
 * everything stays usable by the real `minisign`:
 *
 *   public key   "Ed" | key id (8) | ed25519 public key (32)
 *   secret key   "Ed" | kdf "Sc" or 0,0 | "B2" | salt (32) | opslimit u64le | memlimit u64le |
 *                [ key id (8) | ed25519 secret key = seed | public key (64) | blake2b-256 checksum (32) ]
 *                where the bracketed part is XORed with scrypt(password) when the kdf is "Sc"
 *   signature    "ED" (ed25519 over blake2b-512 of the file) or legacy "Ed" (over the file) | key id (8) | sig (64)
 *   global sig   ed25519 over signature (64) | trusted comment
 *
 * Nothing here touches the file system: callers pass bytes and names (used in messages) and write the text.
 */

/** A minisign format error; its message names the input and says what is wrong with it. */
export class MinisignError extends UserError {
  override name = 'MinisignError';
}

export const UNTRUSTED_PREFIX = 'untrusted comment: ';
export const TRUSTED_PREFIX = 'trusted comment: ';

const SIGALG = Buffer.from('Ed');
const SIGALG_HASHED = Buffer.from('ED');
const KDF_SCRYPT = Buffer.from('Sc');
const KDF_NONE = Buffer.from([0, 0]);
const CHKALG = Buffer.from('B2');

const KEYID_BYTES = 8;
const PUBLIC_KEY_BYTES = 2 + KEYID_BYTES + 32;
const SALT_BYTES = 32;
const KEYNUM_SK_BYTES = KEYID_BYTES + 64 + 32;
const SECRET_KEY_BYTES = 2 + 2 + 2 + SALT_BYTES + 8 + 8 + KEYNUM_SK_BYTES;
const SIGNATURE_BYTES = 2 + KEYID_BYTES + 64;

// DER wrappers of a raw ed25519 seed (PKCS#8) and public key (SPKI), the forms Node imports.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

export interface PublicKey {
  keyId: Buffer;
  /** The 32-byte ed25519 public key. */
  key: Buffer;
}

export interface SecretKey {
  keyId: Buffer;
  /** libsodium's 64-byte ed25519 secret key: the 32-byte seed followed by the public key. */
  key: Buffer;
}

export interface KeyPair {
  publicKey: PublicKey;
  secretKey: SecretKey;
}

/** A secret key file as stored: maybe still encrypted. */
export interface SecretKeyFile {
  comment: string;
  encrypted: boolean;
  /** The raw 158 bytes. */
  bytes: Buffer;
  source: string;
}

export interface Signature {
  untrustedComment: string;
  /** "ED" (prehashed, what minisign 0.11 writes) or "Ed" (legacy, over the whole file). */
  algorithm: 'ED' | 'Ed';
  keyId: Buffer;
  signature: Buffer;
  /** For display; may show replacement characters if the file holds bytes that are not UTF-8. */
  trustedComment: string;
  /** Exactly the bytes that the global signature covers. */
  trustedCommentBytes: Buffer;
  globalSignature: Buffer;
}

/** What was signed: the file's bytes, or only its blake2b-512 (enough for prehashed signatures). */
export type Message = { bytes: Uint8Array } | { blake2b512: Uint8Array };

/**
 * BLAKE2b-512 of a whole message: what a prehashed ("ED") signature signs. Node's native one, for speed on large
 * files.
 */
export function blake2b512(data: Uint8Array): Buffer {
  return createHash('blake2b512').update(data).digest();
}

/**
 * BLAKE2b-256, the secret key checksum ("B2"). Node offers BLAKE2b only with a 64-byte output, and this is not its
 * truncation: the output length is part of BLAKE2b's parameter block, so it is a different function.
 */
export function blake2b256(data: Uint8Array): Buffer {
  return Buffer.from(nobleBlake2b(data, { dkLen: 32 }));
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

/** The key id as minisign shows it: the 8 bytes read as a little-endian integer, in hex (zero-padded, as 0.12 does). */
export function keyIdHex(keyId: Uint8Array): string {
  return Buffer.from(keyId).readBigUInt64LE(0).toString(16).toUpperCase().padStart(16, '0');
}

function privateKeyObject(secretKey: SecretKey): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, secretKey.key.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(publicKey: PublicKey): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, publicKey.key]), format: 'der', type: 'spki' });
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = pkcs8.subarray(pkcs8.length - 32);
  const pk = rawPublicKey(publicKey);
  const keyId = randomBytes(KEYID_BYTES);
  return { publicKey: { keyId, key: pk }, secretKey: { keyId: Buffer.from(keyId), key: Buffer.concat([seed, pk]) } };
}

export function publicKeyOf(secretKey: SecretKey): PublicKey {
  return { keyId: Buffer.from(secretKey.keyId), key: Buffer.from(secretKey.key.subarray(32)) };
}

/** The bare base64 form, as `minisign -P` takes it and as a project publishes it. */
export function publicKeyBase64(publicKey: PublicKey): string {
  return Buffer.concat([SIGALG, publicKey.keyId, publicKey.key]).toString('base64');
}

export function formatPublicKeyFile(publicKey: PublicKey): string {
  return `${UNTRUSTED_PREFIX}minisign public key ${keyIdHex(publicKey.keyId)}\n${publicKeyBase64(publicKey)}\n`;
}

/**
 * Base64 as minisign writes it: the standard alphabet, padded. Anything else (another alphabet, stray characters,
 * a cut line) is refused with the byte count that was expected, because a key or signature that decodes "mostly"
 * must never be used.
 */
function decodeBase64(text: string, expectedBytes: number, what: string, source: string): Buffer {
  if (text === '') throw new MinisignError(`${source}: the ${what} line is empty`);
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  if (bad) {
    throw new MinisignError(`${source}: the ${what} is not valid base64 (character ${JSON.stringify(bad[0])} at position ${bad.index + 1})`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new MinisignError(`${source}: the ${what} is not valid base64 (its length or padding is wrong; was it cut?)`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new MinisignError(`${source}: the ${what} is not valid base64 (non-canonical encoding)`);
  if (bytes.length < expectedBytes) {
    throw new MinisignError(`${source}: the ${what} is truncated: it holds ${bytes.length} bytes, a minisign ${what} has ${expectedBytes}`);
  }
  if (bytes.length > expectedBytes) {
    throw new MinisignError(`${source}: the ${what} is too long: it holds ${bytes.length} bytes, a minisign ${what} has ${expectedBytes}`);
  }
  return bytes;
}

/** Lines as minisign's fgets+trim sees them: CR removed, nothing else touched. */
function linesOf(text: string): string[] {
  return text.split('\n').map((line) => line.replace(/\r+$/, ''));
}

function algorithmName(bytes: Buffer): string {
  return /^[\x20-\x7e]{2}$/.test(bytes.toString('latin1')) ? `"${bytes.toString('latin1')}"` : `0x${bytes.toString('hex')}`;
}

/**
 * A public key, either a whole minisign public key file (comment line, then the key) or the bare base64 string
 * (`minisign -P` form).
 */
export function parsePublicKey(text: string, source: string): PublicKey {
  const lines = linesOf(text.trim());
  let line: string;
  if (lines.length === 1) {
    line = lines[0]!.trim();
  } else {
    if (!lines[0]!.startsWith(UNTRUSTED_PREFIX)) {
      throw new MinisignError(`${source} is not a minisign public key: its first line should start with "${UNTRUSTED_PREFIX}", or give the key as one base64 line`);
    }
    line = lines[1]!.trim();
  }
  const bytes = decodeBase64(line, PUBLIC_KEY_BYTES, 'public key', source);
  const algorithm = bytes.subarray(0, 2);
  if (!algorithm.equals(SIGALG)) throw new MinisignError(`${source}: unknown public key algorithm ${algorithmName(algorithm)} (minisign keys are "Ed")`);
  return { keyId: bytes.subarray(2, 2 + KEYID_BYTES), key: bytes.subarray(2 + KEYID_BYTES) };
}

function secretKeyChecksum(keyId: Uint8Array, key: Uint8Array): Buffer {
  return blake2b256(Buffer.concat([SIGALG, keyId, key]));
}

export interface SecretKeyOptions {
  /** Encrypt with this password (scrypt, as minisign); without one the key is stored unencrypted, like `minisign -G -W`. */
  password?: string;
  /** Only for tests: smaller scrypt limits. Keys for real use take minisign's defaults. */
  limits?: ScryptLimits;
  comment?: string;
}

export async function formatSecretKeyFile(secretKey: SecretKey, options: SecretKeyOptions = {}): Promise<string> {
  const encrypted = options.password !== undefined;
  const limits = options.limits ?? SCRYPT_SENSITIVE;
  const salt = encrypted ? randomBytes(SALT_BYTES) : Buffer.alloc(SALT_BYTES);
  const limitBytes = Buffer.alloc(16);
  if (encrypted) {
    limitBytes.writeBigUInt64LE(limits.opslimit, 0);
    limitBytes.writeBigUInt64LE(limits.memlimit, 8);
  }
  // minisign -W leaves the checksum zero; writing it anyway lets a damaged unencrypted key be detected here.
  let keynumSk: Buffer = Buffer.concat([secretKey.keyId, secretKey.key, secretKeyChecksum(secretKey.keyId, secretKey.key)]);
  if (encrypted) {
    const stream = await pwhashScryptSalsa208Sha256(Buffer.from(options.password!, 'utf8'), salt, KEYNUM_SK_BYTES, limits);
    keynumSk = xor(keynumSk, stream);
  }
  const bytes = Buffer.concat([SIGALG, encrypted ? KDF_SCRYPT : KDF_NONE, CHKALG, salt, limitBytes, keynumSk]);
  const comment = options.comment ?? (encrypted ? 'minisign encrypted secret key' : 'minisign secret key (not encrypted)');
  return `${UNTRUSTED_PREFIX}${comment}\n${bytes.toString('base64')}\n`;
}

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((byte, i) => byte ^ b[i]!));
}

/** Read a secret key file's structure; `openSecretKey` then decrypts it. */
export function parseSecretKeyFile(text: string, source: string): SecretKeyFile {
  const lines = linesOf(text);
  if (lines.length < 2 || !lines[0]!.startsWith(UNTRUSTED_PREFIX)) {
    throw new MinisignError(`${source} is not a minisign secret key file: it should be a "${UNTRUSTED_PREFIX}" line followed by the key in base64`);
  }
  const bytes = decodeBase64(lines[1]!.trim(), SECRET_KEY_BYTES, 'secret key', source);
  const signature = bytes.subarray(0, 2);
  const kdf = bytes.subarray(2, 4);
  const checksum = bytes.subarray(4, 6);
  if (!signature.equals(SIGALG)) throw new MinisignError(`${source}: unknown signature algorithm ${algorithmName(signature)} (minisign keys are "Ed")`);
  if (!checksum.equals(CHKALG)) throw new MinisignError(`${source}: unknown checksum algorithm ${algorithmName(checksum)} (minisign uses "B2")`);
  if (!kdf.equals(KDF_SCRYPT) && !kdf.equals(KDF_NONE)) {
    throw new MinisignError(`${source}: unknown key derivation ${algorithmName(kdf)} (minisign uses "Sc", or none for an unencrypted key)`);
  }
  return { comment: lines[0]!.slice(UNTRUSTED_PREFIX.length), encrypted: kdf.equals(KDF_SCRYPT), bytes, source };
}

/** Decrypt (when encrypted) and check a secret key. A wrong password is told apart from a damaged file where possible. */
export async function openSecretKey(file: SecretKeyFile, password?: string): Promise<SecretKey> {
  const { bytes, source } = file;
  let keynumSk = bytes.subarray(bytes.length - KEYNUM_SK_BYTES);
  if (file.encrypted) {
    if (password === undefined) throw new MinisignError(`${source} is encrypted and needs its password`);
    const salt = bytes.subarray(6, 6 + SALT_BYTES);
    const limits = { opslimit: bytes.readBigUInt64LE(6 + SALT_BYTES), memlimit: bytes.readBigUInt64LE(6 + SALT_BYTES + 8) };
    keynumSk = xor(keynumSk, await pwhashScryptSalsa208Sha256(Buffer.from(password, 'utf8'), salt, KEYNUM_SK_BYTES, limits, source));
  }
  const keyId = Buffer.from(keynumSk.subarray(0, KEYID_BYTES));
  const key = Buffer.from(keynumSk.subarray(KEYID_BYTES, KEYID_BYTES + 64));
  const checksum = keynumSk.subarray(KEYID_BYTES + 64);
  // `minisign -G -W` writes an all-zero checksum for unencrypted keys and never checks it; ours is real.
  const unchecked = !file.encrypted && checksum.every((byte) => byte === 0);
  if (!unchecked && !checksum.equals(secretKeyChecksum(keyId, key))) {
    throw new MinisignError(
      file.encrypted
        ? `wrong password for the secret key ${source} (or the key file is damaged): its checksum does not match after decryption`
        : `the secret key ${source} is damaged: its checksum does not match`,
    );
  }
  const secretKey = { keyId, key };
  let derived: Buffer;
  try {
    derived = rawPublicKey(createPublicKey(privateKeyObject(secretKey)));
  } catch {
    throw new MinisignError(`the secret key ${source} is damaged: it is not an ed25519 key`);
  }
  if (!derived.equals(key.subarray(32))) throw new MinisignError(`the secret key ${source} is damaged: its public half does not belong to its private half`);
  return secretKey;
}

// ---------------------------------------------------------------------------------------------------------------
// Signatures

function oneLine(comment: string, what: string): string {
  if (/[\r\n]/.test(comment)) throw new MinisignError(`the ${what} must be one line`);
  return comment;
}

/** minisign's default trusted comment: the time, the file's name and that the signature is prehashed. */
export function defaultTrustedComment(fileName: string, when = new Date()): string {
  return `timestamp:${Math.floor(when.getTime() / 1000)}\tfile:${fileName}\thashed`;
}

export interface SignOptions {
  trustedComment: string;
  untrustedComment?: string;
  /** Write a legacy "Ed" signature over the whole message (only to test that verification still accepts them). */
  legacy?: boolean;
}

export function signMessage(secretKey: SecretKey, message: Message, options: SignOptions): Signature {
  const key = privateKeyObject(secretKey);
  const legacy = options.legacy === true;
  let signed: Uint8Array;
  if (legacy) {
    if (!('bytes' in message)) throw new Error('a legacy signature needs the whole message');
    signed = message.bytes;
  } else {
    signed = 'bytes' in message ? blake2b512(message.bytes) : message.blake2b512;
  }
  const signature = edSign(null, signed, key);
  const trustedComment = oneLine(options.trustedComment, 'trusted comment');
  const trustedCommentBytes = Buffer.from(trustedComment, 'utf8');
  const globalSignature = edSign(null, Buffer.concat([signature, trustedCommentBytes]), key);
  return {
    untrustedComment: oneLine(options.untrustedComment ?? 'signature from minisign secret key', 'untrusted comment'),
    algorithm: legacy ? 'Ed' : 'ED',
    keyId: Buffer.from(secretKey.keyId),
    signature,
    trustedComment,
    trustedCommentBytes,
    globalSignature,
  };
}

export function formatSignature(signature: Signature): Buffer {
  const body = Buffer.concat([Buffer.from(signature.algorithm), signature.keyId, signature.signature]);
  return Buffer.concat([
    Buffer.from(`${UNTRUSTED_PREFIX}${signature.untrustedComment}\n${body.toString('base64')}\n${TRUSTED_PREFIX}`, 'utf8'),
    signature.trustedCommentBytes,
    Buffer.from(`\n${signature.globalSignature.toString('base64')}\n`),
  ]);
}

/** A `.minisig` file, as bytes (the trusted comment is signed byte for byte). `source` names it in messages. */
export function parseSignature(file: Uint8Array | string, source: string): Signature {
  const raw = typeof file === 'string' ? Buffer.from(file, 'utf8') : Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  // latin1 maps each byte to one character, so the trusted comment's bytes survive the split unchanged.
  const text = raw.toString('latin1');
  if (text.trim() === '') throw new MinisignError(`${source} is empty`);
  const lines = linesOf(text);
  if (!lines[0]!.startsWith(UNTRUSTED_PREFIX)) throw new MinisignError(`${source} is not a minisign signature: its first line should start with "${UNTRUSTED_PREFIX}"`);
  if (lines.length < 2 || lines[1] === '') throw new MinisignError(`${source} is truncated: it has no signature line`);
  const body = decodeBase64(lines[1]!.trim(), SIGNATURE_BYTES, 'signature', source);
  const algorithm = body.subarray(0, 2);
  if (!algorithm.equals(SIGALG_HASHED) && !algorithm.equals(SIGALG)) {
    throw new MinisignError(`${source}: unknown signature algorithm ${algorithmName(algorithm)} (minisign signatures are "ED", or "Ed" for legacy ones)`);
  }
  if (lines.length < 3 || lines[2] === '') throw new MinisignError(`${source} is truncated: it has no trusted comment line`);
  if (!lines[2]!.startsWith(TRUSTED_PREFIX)) throw new MinisignError(`${source}: the third line should start with "${TRUSTED_PREFIX}"`);
  if (lines.length < 4 || lines[3] === '') throw new MinisignError(`${source} is truncated: it has no signature of the trusted comment`);
  const globalSignature = decodeBase64(lines[3]!.trim(), 64, 'trusted comment signature', source);
  return {
    untrustedComment: Buffer.from(lines[0]!.slice(UNTRUSTED_PREFIX.length), 'latin1').toString('utf8'),
    algorithm: algorithm.equals(SIGALG_HASHED) ? 'ED' : 'Ed',
    keyId: body.subarray(2, 2 + KEYID_BYTES),
    signature: body.subarray(2 + KEYID_BYTES),
    trustedComment: Buffer.from(lines[2]!.slice(TRUSTED_PREFIX.length), 'latin1').toString('utf8'),
    trustedCommentBytes: Buffer.from(lines[2]!.slice(TRUSTED_PREFIX.length), 'latin1'),
    globalSignature,
  };
}

export interface VerifyNames {
  /** The signed file, e.g. "SHA256SUMS". */
  file: string;
  /** Its signature file, e.g. "SHA256SUMS.minisig". */
  signature: string;
}

/**
 * Check a signature the way `minisign -V` does, in its order: key id, signature of the file, signature of the
 * trusted comment. Throws a MinisignError saying which of them failed; returns the (now trusted) comment.
 */
export function verifySignature(publicKey: PublicKey, signature: Signature, message: Message, names: VerifyNames): { trustedComment: string } {
  if (!signature.keyId.equals(publicKey.keyId)) {
    throw new MinisignError(`${names.signature} was signed by key ${keyIdHex(signature.keyId)}, not by the given key ${keyIdHex(publicKey.keyId)}`);
  }
  let signed: Uint8Array;
  if (signature.algorithm === 'ED') {
    signed = 'bytes' in message ? blake2b512(message.bytes) : message.blake2b512;
  } else {
    if (!('bytes' in message)) throw new MinisignError(`${names.signature} is a legacy (not prehashed) signature, which needs the whole of ${names.file}`);
    signed = message.bytes;
  }
  const key = publicKeyObject(publicKey);
  if (!edVerify(null, signed, key, signature.signature)) {
    throw new MinisignError(`signature of ${names.file} does not verify with key ID ${keyIdHex(publicKey.keyId)}: ${names.file} or ${names.signature} was changed`);
  }
  const commented = Buffer.concat([signature.signature, signature.trustedCommentBytes]);
  if (!edVerify(null, commented, key, signature.globalSignature)) {
    throw new MinisignError(`the trusted comment in ${names.signature} does not verify with key ID ${keyIdHex(publicKey.keyId)}: it was changed`);
  }
  return { trustedComment: signature.trustedComment };
}
