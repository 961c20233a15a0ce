import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ScryptLimits } from '../../builder/signing/libsodium-scrypt.ts';
import {
  type KeyPair,
  blake2b256,
  blake2b512,
  formatPublicKeyFile,
  formatSecretKeyFile,
  formatSignature,
  generateKeyPair,
  keyIdHex,
  openSecretKey,
  parsePublicKey,
  parseSecretKeyFile,
  parseSignature,
  publicKeyBase64,
  publicKeyOf,
  signMessage,
  verifySignature,
} from '../../builder/signing/minisign.ts';
import { scratch } from '../helpers/env.ts';

/** libsodium's "interactive" limits: 16 MiB, fast enough for many round trips; real keys use SCRYPT_SENSITIVE. */
const FAST: ScryptLimits = { opslimit: 524288n, memlimit: 16777216n };

const names = { file: 'data.bin', signature: 'data.bin.minisig' };

async function minisign(args: string[], input?: string) {
  return execa('minisign', args, { reject: false, all: true, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
}

/** Replace the base64 character at `index` of line `line` with another valid one, so only the decoded bytes change. */
function flipBase64(text: string, line: number, index: number): string {
  const lines = text.split('\n');
  const original = lines[line]!;
  const replacement = original[index] === 'A' ? 'B' : 'A';
  lines[line] = original.slice(0, index) + replacement + original.slice(index + 1);
  return lines.join('\n');
}

describe('BLAKE2b', () => {
  it('gives the key checksum with 32 output bytes (RFC 7693 / libsodium for "abc"), not a truncated BLAKE2b-512', () => {
    // The BLAKE2 reference's BLAKE2b-256 of "abc"; a truncated BLAKE2b-512 would be ba80a53f… (RFC 7693 Appendix A).
    expect(blake2b256(Buffer.from('abc')).toString('hex')).toBe('bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
    expect(blake2b512(Buffer.from('abc')).toString('hex')).toBe(
      'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923',
    );
  });
});

describe('minisign keys', () => {
  let pair: KeyPair;
  beforeAll(() => {
    pair = generateKeyPair();
  });

  it('writes a public key file and a bare base64 key that both parse back to the same key', () => {
    const file = formatPublicKeyFile(pair.publicKey);
    const [comment, line] = file.split('\n');
    expect(comment).toBe(`untrusted comment: minisign public key ${keyIdHex(pair.publicKey.keyId)}`);
    expect(line).toBe(publicKeyBase64(pair.publicKey));
    expect(line).toMatch(/^RW[A-Za-z0-9+/]{54}$/);
    const raw = Buffer.from(line!, 'base64');
    expect(raw.subarray(0, 2).toString()).toBe('Ed');
    expect(raw.subarray(2, 10).equals(pair.publicKey.keyId)).toBe(true);
    expect(raw.subarray(10).equals(pair.publicKey.key)).toBe(true);
    for (const text of [file, line!, `${line}\r\n`, file.replaceAll('\n', '\r\n')]) {
      const parsed = parsePublicKey(text, 'k.pub');
      expect(parsed.keyId.equals(pair.publicKey.keyId)).toBe(true);
      expect(parsed.key.equals(pair.publicKey.key)).toBe(true);
    }
  });

  it('shows the key id as minisign does: the bytes as a little-endian number, 16 hex digits', () => {
    expect(keyIdHex(Buffer.from([0xe9, 0x1e, 0x36, 0xc3, 0x8f, 0x69, 0xa3, 0x0b]))).toBe('0BA3698FC3361EE9');
  });

  it.each([
    ['bad base64', 'RWT!abc', 'k.pub: the public key is not valid base64 (character "!" at position 4)'],
    ['a cut key', publicKeyBase64Prefix(40), 'k.pub: the public key is truncated: it holds 30 bytes, a minisign public key has 42'],
    ['another algorithm', Buffer.concat([Buffer.from('Zz'), randomBytes(40)]).toString('base64'), 'k.pub: unknown public key algorithm "Zz" (minisign keys are "Ed")'],
    ['a key file without its comment', 'not a comment\nRWQ=\n', 'k.pub is not a minisign public key'],
  ])('refuses a public key with %s', (_what, text, message) => {
    expect(() => parsePublicKey(text, 'k.pub')).toThrow(message);
  });

  it('stores a secret key unencrypted (kdf 0,0, as minisign -G -W) and reads it back', async () => {
    const text = await formatSecretKeyFile(pair.secretKey);
    const raw = Buffer.from(text.split('\n')[1]!, 'base64');
    expect(raw.length).toBe(158);
    expect(raw.subarray(0, 6).equals(Buffer.from([0x45, 0x64, 0, 0, 0x42, 0x32]))).toBe(true);
    const file = parseSecretKeyFile(text, 'k.key');
    expect(file.encrypted).toBe(false);
    const key = await openSecretKey(file);
    expect(key.key.equals(pair.secretKey.key)).toBe(true);
    expect(key.keyId.equals(pair.secretKey.keyId)).toBe(true);
  });

  it('finds a damaged unencrypted secret key by its checksum', async () => {
    const text = flipBase64(await formatSecretKeyFile(pair.secretKey), 1, 80);
    await expect(openSecretKey(parseSecretKeyFile(text, 'k.key'))).rejects.toThrow('the secret key k.key is damaged: its checksum does not match');
  });

  it('encrypts a secret key with scrypt ("Sc"), decrypts it with the password, and says "wrong password" otherwise', async () => {
    const text = await formatSecretKeyFile(pair.secretKey, { password: 'correct horse', limits: FAST });
    const raw = Buffer.from(text.split('\n')[1]!, 'base64');
    expect(raw.subarray(0, 6).toString('latin1')).toBe('EdScB2');
    expect(raw.readBigUInt64LE(38)).toBe(FAST.opslimit);
    expect(raw.readBigUInt64LE(46)).toBe(FAST.memlimit);
    // The key id, the key and the checksum are all hidden.
    expect(raw.includes(pair.secretKey.key.subarray(0, 32))).toBe(false);
    expect(raw.includes(pair.secretKey.keyId)).toBe(false);
    const file = parseSecretKeyFile(text, 'k.key');
    expect(file.encrypted).toBe(true);
    expect((await openSecretKey(file, 'correct horse')).key.equals(pair.secretKey.key)).toBe(true);
    await expect(openSecretKey(file, 'correct hors')).rejects.toThrow('wrong password for the secret key k.key');
    await expect(openSecretKey(file)).rejects.toThrow('k.key is encrypted and needs its password');
  });

  it.each([
    ['an unknown key derivation', 2, 'Xx', 'k.key: unknown key derivation "Xx"'],
    ['an unknown checksum', 4, 'S1', 'k.key: unknown checksum algorithm "S1" (minisign uses "B2")'],
    ['an unknown signature algorithm', 0, 'Rs', 'k.key: unknown signature algorithm "Rs"'],
  ])('refuses a secret key with %s', async (_what, offset, bytes, message) => {
    const raw = Buffer.from((await formatSecretKeyFile(pair.secretKey)).split('\n')[1]!, 'base64');
    raw.write(bytes, offset, 'latin1');
    expect(() => parseSecretKeyFile(`untrusted comment: x\n${raw.toString('base64')}\n`, 'k.key')).toThrow(message);
  });

  it('refuses a cut secret key', async () => {
    const line = (await formatSecretKeyFile(pair.secretKey)).split('\n')[1]!;
    expect(() => parseSecretKeyFile(`untrusted comment: x\n${line.slice(0, 100)}\n`, 'k.key')).toThrow('k.key: the secret key is truncated: it holds 75 bytes, a minisign secret key has 158');
  });
});

function publicKeyBase64Prefix(chars: number): string {
  return publicKeyBase64(generateKeyPair().publicKey).slice(0, chars);
}

describe('minisign signatures', () => {
  const message = Buffer.from('6f0e…  family.img.xz\nSome bytes that are signed.\n');
  let pair: KeyPair;
  let other: KeyPair;
  beforeAll(() => {
    pair = generateKeyPair();
    other = generateKeyPair();
  });

  const signed = (options: { legacy?: boolean; trustedComment?: string } = {}) =>
    formatSignature(signMessage(pair.secretKey, { bytes: message }, { trustedComment: options.trustedComment ?? 'timestamp:1700000000\tfile:data.bin\thashed', legacy: options.legacy }));

  it('signs prehashed ("ED": ed25519 over BLAKE2b-512) and verifies', () => {
    const text = signed().toString();
    const lines = text.split('\n');
    expect(lines[0]).toBe('untrusted comment: signature from minisign secret key');
    expect(lines[2]).toBe('trusted comment: timestamp:1700000000\tfile:data.bin\thashed');
    expect(lines).toHaveLength(5);
    const body = Buffer.from(lines[1]!, 'base64');
    expect(body.subarray(0, 2).toString()).toBe('ED');
    expect(body.subarray(2, 10).equals(pair.secretKey.keyId)).toBe(true);
    const signature = parseSignature(text, names.signature);
    expect(verifySignature(pair.publicKey, signature, { bytes: message }, names).trustedComment).toBe('timestamp:1700000000\tfile:data.bin\thashed');
    // A prehashed signature verifies from the digest alone, so a large file never has to be in memory.
    expect(() => verifySignature(pair.publicKey, signature, { blake2b512: createHash('blake2b512').update(message).digest() }, names)).not.toThrow();
  });

  it('verifies legacy ("Ed") signatures over the whole file', () => {
    const signature = parseSignature(signed({ legacy: true }), names.signature);
    expect(signature.algorithm).toBe('Ed');
    expect(() => verifySignature(pair.publicKey, signature, { bytes: message }, names)).not.toThrow();
    expect(() => verifySignature(pair.publicKey, signature, { bytes: Buffer.concat([message, Buffer.from('x')]) }, names)).toThrow('signature of data.bin does not verify');
  });

  it('keeps a trusted comment that is not ASCII byte for byte', () => {
    const signature = parseSignature(signed({ trustedComment: 'file:données.json\tremarque: ✓' }), names.signature);
    expect(signature.trustedComment).toBe('file:données.json\tremarque: ✓');
    expect(() => verifySignature(pair.publicKey, signature, { bytes: message }, names)).not.toThrow();
  });

  it('fails with the file named when the file changed', () => {
    const changed = Buffer.from(message);
    changed[3]! ^= 1;
    expect(() => verifySignature(pair.publicKey, parseSignature(signed(), names.signature), { bytes: changed }, names)).toThrow(
      `signature of data.bin does not verify with key ID ${keyIdHex(pair.publicKey.keyId)}`,
    );
  });

  it('fails when the signature bytes changed', () => {
    const text = flipBase64(signed().toString(), 1, 40);
    expect(() => verifySignature(pair.publicKey, parseSignature(text, names.signature), { bytes: message }, names)).toThrow('signature of data.bin does not verify');
  });

  it('fails when the trusted comment changed', () => {
    const text = signed().toString().replace('timestamp:1700000000', 'timestamp:1800000000');
    expect(() => verifySignature(pair.publicKey, parseSignature(text, names.signature), { bytes: message }, names)).toThrow(
      `the trusted comment in data.bin.minisig does not verify with key ID ${keyIdHex(pair.publicKey.keyId)}: it was changed`,
    );
  });

  it('names both key ids when the signature is from another key', () => {
    expect(() => verifySignature(other.publicKey, parseSignature(signed(), names.signature), { bytes: message }, names)).toThrow(
      `data.bin.minisig was signed by key ${keyIdHex(pair.publicKey.keyId)}, not by the given key ${keyIdHex(other.publicKey.keyId)}`,
    );
  });

  it('does not trust the key id alone: another key that claims the same id fails the signature check', () => {
    const impostor = { keyId: pair.publicKey.keyId, key: other.publicKey.key };
    expect(() => verifySignature(impostor, parseSignature(signed(), names.signature), { bytes: message }, names)).toThrow('signature of data.bin does not verify');
  });

  it.each([
    ['an empty file', () => '', 'x.minisig is empty'],
    ['no comment line', () => 'RUQ=\n', 'x.minisig is not a minisign signature: its first line should start with "untrusted comment: "'],
    ['bad base64', (t: string) => t.replace(/\n[A-Za-z0-9+/]{5}/, '\nRU%$#'), 'x.minisig: the signature is not valid base64 (character "%" at position 3)'],
    ['a cut signature line', (t: string) => t.replace(/\n(R[A-Za-z0-9+/]{39})[^\n]*/, '\n$1'), 'x.minisig: the signature is truncated: it holds 30 bytes, a minisign signature has 74'],
    ['no trusted comment', (t: string) => t.split('\n').slice(0, 2).join('\n'), 'x.minisig is truncated: it has no trusted comment line'],
    ['no global signature', (t: string) => t.split('\n').slice(0, 3).join('\n'), 'x.minisig is truncated: it has no signature of the trusted comment'],
    ['a bad third line', (t: string) => t.replace('\ntrusted comment: ', '\ntrusted: '), 'x.minisig: the third line should start with "trusted comment: "'],
  ])('refuses a signature file with %s', (_what, edit, expected) => {
    expect(() => parseSignature(edit(signed().toString()), 'x.minisig')).toThrow(expected);
  });

  it('refuses an unknown signature algorithm', () => {
    const lines = signed().toString().split('\n');
    const body = Buffer.from(lines[1]!, 'base64');
    body.write('Xy', 0, 'latin1');
    lines[1] = body.toString('base64');
    expect(() => parseSignature(lines.join('\n'), 'x.minisig')).toThrow('x.minisig: unknown signature algorithm "Xy" (minisign signatures are "ED", or "Ed" for legacy ones)');
  });

  it('refuses a comment with a line break rather than writing a file minisign would misread', () => {
    expect(() => signMessage(pair.secretKey, { bytes: message }, { trustedComment: 'a\nb' })).toThrow('the trusted comment must be one line');
  });
});

describe('with the real minisign 0.11', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await scratch('minisign');
    expect((await minisign(['-v'])).stdout).toMatch(/^minisign 0\.1\d/);
  });

  it('accepts our signatures with our public key file (-p) and the bare key (-P), also when it requires prehashing (-H)', async () => {
    const pair = generateKeyPair();
    const file = join(dir, 'ours.txt');
    const content = randomBytes(5000);
    await writeFile(file, content);
    await writeFile(`${file}.minisig`, formatSignature(signMessage(pair.secretKey, { bytes: content }, { trustedComment: 'timestamp:1700000000\tfile:ours.txt\thashed' })));
    await writeFile(join(dir, 'ours.pub'), formatPublicKeyFile(pair.publicKey));
    const byFile = await minisign(['-V', '-H', '-p', join(dir, 'ours.pub'), '-m', file]);
    expect(byFile.all).toContain('Signature and comment signature verified');
    expect(byFile.all).toContain('Trusted comment: timestamp:1700000000\tfile:ours.txt\thashed');
    expect(byFile.exitCode).toBe(0);
    expect((await minisign(['-V', '-P', publicKeyBase64(pair.publicKey), '-m', file])).exitCode).toBe(0);
    // And it is really checking: another key and a changed file are refused.
    expect((await minisign(['-V', '-P', publicKeyBase64(generateKeyPair().publicKey), '-m', file])).exitCode).not.toBe(0);
    await writeFile(file, Buffer.concat([content, Buffer.from('!')]));
    const changed = await minisign(['-V', '-p', join(dir, 'ours.pub'), '-m', file]);
    expect(changed.exitCode).not.toBe(0);
    expect(changed.all).toContain('Signature verification failed');
  });

  it('makes unencrypted keys (-G -W) and signatures, prehashed and legacy (-l), that we read and verify', async () => {
    const pub = join(dir, 'w.pub');
    const key = join(dir, 'w.key');
    expect((await minisign(['-G', '-W', '-p', pub, '-s', key])).exitCode).toBe(0);
    const publicKey = parsePublicKey(await readFile(pub, 'utf8'), pub);
    const secretKey = await openSecretKey(parseSecretKeyFile(await readFile(key, 'utf8'), key));
    expect(publicKeyOf(secretKey).key.equals(publicKey.key)).toBe(true);
    expect(secretKey.keyId.equals(publicKey.keyId)).toBe(true);
    const file = join(dir, 'theirs.bin');
    const content = randomBytes(3000);
    await writeFile(file, content);
    for (const legacy of [false, true]) {
      expect((await minisign(['-S', ...(legacy ? ['-l'] : []), '-s', key, '-m', file])).exitCode).toBe(0);
      const signature = parseSignature(await readFile(`${file}.minisig`), 'theirs.bin.minisig');
      expect(signature.algorithm).toBe(legacy ? 'Ed' : 'ED');
      expect(signature.trustedComment).toMatch(legacy ? /^timestamp:\d+\tfile:theirs\.bin$/ : /^timestamp:\d+\tfile:theirs\.bin\thashed$/);
      expect(() => verifySignature(publicKey, signature, { bytes: content }, names)).not.toThrow();
      expect(() => verifySignature(publicKey, signature, { bytes: content.subarray(1) }, names)).toThrow('does not verify');
    }
    // Our signature made with their key verifies with their tool.
    await writeFile(`${file}.minisig`, formatSignature(signMessage(secretKey, { bytes: content }, { trustedComment: 'ours with their key' })));
    expect((await minisign(['-V', '-p', pub, '-m', file])).exitCode).toBe(0);
  });

  it('makes password-protected keys (-G, password on stdin) that we decrypt, and we say "wrong password" for a wrong one', { timeout: 120_000 }, async () => {
    const pub = join(dir, 'e.pub');
    const key = join(dir, 'e.key');
    const made = await minisign(['-G', '-p', pub, '-s', key], 'their password\ntheir password\n');
    expect(made.exitCode, made.all).toBe(0);
    const file = parseSecretKeyFile(await readFile(key, 'utf8'), key);
    expect(file.encrypted).toBe(true);
    const secretKey = await openSecretKey(file, 'their password');
    expect(secretKey.keyId.equals(parsePublicKey(await readFile(pub, 'utf8'), pub).keyId)).toBe(true);
    expect(publicKeyOf(secretKey).key.equals(parsePublicKey(await readFile(pub, 'utf8'), pub).key)).toBe(true);
    await expect(openSecretKey(file, 'their passw0rd')).rejects.toThrow(`wrong password for the secret key ${key}`);
  });

  it('signs with our secret keys, unencrypted and encrypted with minisign\'s own scrypt limits', { timeout: 180_000 }, async () => {
    const file = join(dir, 'to-sign.txt');
    await writeFile(file, 'signed by minisign with a key simplex-pi made\n');
    for (const password of [undefined, 'our password']) {
      const pair = generateKeyPair();
      const key = join(dir, password ? 'ours-e.key' : 'ours-w.key');
      await writeFile(key, await formatSecretKeyFile(pair.secretKey, { password }), { mode: 0o600 });
      const signing = await minisign(['-S', '-s', key, '-m', file], password === undefined ? undefined : `${password}\n`);
      expect(signing.exitCode, signing.all).toBe(0);
      expect((await minisign(['-V', '-P', publicKeyBase64(pair.publicKey), '-m', file])).exitCode).toBe(0);
      // minisign -R rebuilds the public key from our secret key file: the same key and key id.
      const rebuilt = join(dir, password ? 'rebuilt-e.pub' : 'rebuilt-w.pub');
      expect((await minisign(['-R', '-s', key, '-p', rebuilt], password === undefined ? undefined : `${password}\n`)).exitCode).toBe(0);
      const parsed = parsePublicKey(await readFile(rebuilt, 'utf8'), rebuilt);
      expect(parsed.key.equals(pair.publicKey.key) && parsed.keyId.equals(pair.publicKey.keyId)).toBe(true);
      if (password) {
        const wrong = await minisign(['-S', '-s', key, '-m', file], 'not our password\n');
        expect(wrong.exitCode).not.toBe(0);
        expect(wrong.all).toContain('Wrong password for that key');
      }
    }
  });
});
