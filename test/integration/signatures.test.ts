import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, cp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSecretKey, parseSecretKeyFile, publicKeyBase64, publicKeyOf } from '../../builder/signing/minisign.ts';
import { TestServer } from '../helpers/http-server.ts';
import { REPO, cli, scratch } from '../helpers/env.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** No test may pick up a password from the environment it runs in. */
const NO_PASSWORD = { SIMPLEX_PI_KEY_PASSWORD: '' };

interface Keys {
  dir: string;
  secret: string;
  pub: string;
  /** The bare base64 key, line 2 of the public key file. */
  base64: string;
  /** The key id from the public key file's comment, as minisign writes it. */
  keyId: string;
}

async function readKeys(dir: string, secret = join(dir, 'minisign.key'), pub = join(dir, 'minisign.pub')): Promise<Keys> {
  const [comment, base64] = (await readFile(pub, 'utf8')).split('\n');
  const id = /^untrusted comment: minisign public key ([0-9A-F]+)$/.exec(comment!)?.[1];
  expect(id, comment).toBeDefined();
  return { dir, secret, pub, base64: base64!, keyId: id!.padStart(16, '0') };
}

async function keygen(extra: string[] = [], env: Record<string, string> = NO_PASSWORD): Promise<Keys> {
  const dir = join(await scratch('keys'), 'keys');
  const result = await cli(['keygen', '--out', dir, ...extra], { env });
  expect(result.exitCode, result.all).toBe(0);
  return readKeys(dir);
}

/**
 * A small output directory shaped like a build's: a few KB "image" and its .xz, the two Imager files, manifest.json
 * and a build log, with a correct SHA256SUMS of all but the log (as emit writes it).
 */
async function releaseDir(): Promise<string> {
  const dir = await scratch('release');
  const files: Record<string, Buffer> = {
    'family.img': randomBytes(8192),
    'family.img.xz': randomBytes(3000),
    'family.rpi-imager.json': Buffer.from(JSON.stringify({ os_list: [{ name: 'family', url: 'https://example.org/family.img.xz' }] }, null, 2)),
    'family.rpi-imager-manifest': Buffer.from(JSON.stringify({ os_list: [{ name: 'family', url: 'file:///tmp/family.img.xz' }] }, null, 2)),
    'manifest.json': Buffer.from('{"manifestVersion":1}\n'),
  };
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  await writeFile(join(dir, 'family.build.log'), 'log\n');
  await writeFile(join(dir, 'SHA256SUMS'), Object.entries(files).map(([name, body]) => `${sha(body)}  ${name}\n`).join(''));
  return dir;
}

async function signedReleaseDir(keys: Keys): Promise<string> {
  const dir = await releaseDir();
  const result = await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD });
  expect(result.exitCode, result.all).toBe(0);
  return dir;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const body = await readFile(path);
  body[offset]! ^= 0x01;
  await writeFile(path, body);
}

async function minisign(args: string[], input?: string) {
  return execa('minisign', args, { reject: false, all: true, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
}

const SIGNED = ['SHA256SUMS', 'family.rpi-imager-manifest', 'family.rpi-imager.json'];

let keys: Keys;
let otherKeys: Keys;
beforeAll(async () => {
  [keys, otherKeys] = await Promise.all([keygen(['--unencrypted']), keygen(['--unencrypted'])]);
});

describe('simplex-pi keygen', () => {
  it('writes a secret key (0600, unencrypted on request) and its public key, and prints the key to publish', async () => {
    const dir = join(await scratch('keygen'), 'k');
    const result = await cli(['keygen', '--out', dir, '--unencrypted'], { env: NO_PASSWORD });
    expect(result.exitCode, result.all).toBe(0);
    const made = await readKeys(dir);
    expect(result.stdout).toContain(`Key ID ${made.keyId}`);
    expect(result.stdout).toContain(`  ${made.base64}\n`);
    expect(result.stdout).toContain(`secret key: ${made.secret} (mode 0600, NOT encrypted`);
    expect(result.stdout).toContain(`public key: ${made.pub}`);
    expect((await stat(made.secret)).mode & 0o777).toBe(0o600);
    expect((await stat(made.pub)).mode & 0o777).toBe(0o644);
    const raw = Buffer.from((await readFile(made.secret, 'utf8')).split('\n')[1]!, 'base64');
    expect(raw.subarray(0, 6).equals(Buffer.from([0x45, 0x64, 0, 0, 0x42, 0x32]))).toBe(true);
    expect(await readdir(dir)).toEqual(['minisign.key', 'minisign.pub']);
  });

  it('never replaces an existing key file, and leaves no half key pair', async () => {
    const before = await readFile(keys.secret);
    const again = await cli(['keygen', '--out', keys.dir, '--unencrypted'], { env: NO_PASSWORD });
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(`${keys.secret} already exists; keygen never replaces a key file`);
    expect((await readFile(keys.secret)).equals(before)).toBe(true);
    const newSecret = join(keys.dir, 'new.key');
    const half = await cli(['keygen', '--secret-key', newSecret, '--public-key', keys.pub, '--unencrypted'], { env: NO_PASSWORD });
    expect(half.exitCode).toBe(1);
    expect(half.stderr).toContain(`${keys.pub} already exists`);
    expect(existsSync(newSecret)).toBe(false);
  });

  it('asks for a password it cannot get, instead of writing an unprotected key', async () => {
    const dir = join(await scratch('keygen'), 'k');
    const result = await cli(['keygen', '--out', dir], { env: NO_PASSWORD });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('the new secret key needs a password: set SIMPLEX_PI_KEY_PASSWORD, or run this in a terminal to type it; or pass --unencrypted');
    expect(existsSync(dir)).toBe(false);
  });

  it('encrypts with the password from SIMPLEX_PI_KEY_PASSWORD, with minisign\'s scrypt limits; minisign and sign use the key, a wrong password is named', { timeout: 180_000 }, async () => {
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const encrypted = await keygen([], { SIMPLEX_PI_KEY_PASSWORD: password });
    const raw = Buffer.from((await readFile(encrypted.secret, 'utf8')).split('\n')[1]!, 'base64');
    expect(raw.subarray(0, 6).toString('latin1')).toBe('EdScB2');
    expect(raw.readBigUInt64LE(38)).toBe(33554432n);
    expect(raw.readBigUInt64LE(46)).toBe(1073741824n);
    // The real minisign signs with it (password on stdin) ...
    const file = join(encrypted.dir, 'note.txt');
    await writeFile(file, 'hello\n');
    const signed = await minisign(['-S', '-s', encrypted.secret, '-m', file], `${password}\n`);
    expect(signed.exitCode, signed.all).toBe(0);
    expect((await minisign(['-V', '-p', encrypted.pub, '-m', file])).exitCode).toBe(0);
    // ... and so does sign; verify accepts the result.
    const dir = await releaseDir();
    const wrong = await cli(['sign', dir, '--key', encrypted.secret], { env: { SIMPLEX_PI_KEY_PASSWORD: `${password}x` } });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain(`wrong password for the secret key ${encrypted.secret}`);
    expect((await readdir(dir)).filter((n) => n.endsWith('.minisig'))).toEqual([]);
    const noPassword = await cli(['sign', dir, '--key', encrypted.secret], { env: NO_PASSWORD });
    expect(noPassword.stderr).toContain(`secret key ${encrypted.secret} needs a password: set SIMPLEX_PI_KEY_PASSWORD`);
    const right = await cli(['sign', dir, '--key', encrypted.secret], { env: { SIMPLEX_PI_KEY_PASSWORD: password } });
    expect(right.exitCode, right.all).toBe(0);
    const verified = await cli(['verify', dir, '--pubkey', encrypted.base64]);
    expect(verified.exitCode, verified.all).toBe(0);
  });

  it('prompts for the password without echo at a terminal (driven through `script`)', { timeout: 120_000 }, async () => {
    const dir = join(await scratch('keygen'), 'k');
    const password = `typed-${randomBytes(6).toString('hex')}`;
    // `script` gives the program a real terminal; the password is typed only once each prompt is shown.
    const command = ['node', join(REPO, 'bin/simplex-pi.mjs'), 'keygen', '--out', dir].map((a) => `'${a}'`).join(' ');
    const session = execa('script', ['-qec', command, '/dev/null'], { reject: false, env: NO_PASSWORD, timeout: 90_000 });
    let screen = '';
    let answered = 0;
    session.stdout!.on('data', (chunk: Buffer) => {
      screen += chunk.toString();
      const prompts = (screen.match(/Password for the new secret key: |The same password again: /g) ?? []).length;
      for (; answered < prompts; answered++) session.stdin!.write(`${password}\r`);
    });
    const result = await session;
    expect(result.exitCode, screen).toBe(0);
    expect(answered).toBe(2);
    expect(screen).not.toContain(password);
    const file = parseSecretKeyFile(await readFile(join(dir, 'minisign.key'), 'utf8'), 'typed key');
    expect(file.encrypted).toBe(true);
    // The typed password opens the key, and it is the key whose public half keygen published next to it.
    const opened = await openSecretKey(file, password);
    expect(publicKeyBase64(publicKeyOf(opened))).toBe((await readKeys(dir)).base64);
  });
});

describe('simplex-pi sign', () => {
  it('signs SHA256SUMS and the Imager files, in a form the real minisign verifies with the key file and with -P', async () => {
    const started = Math.floor(Date.now() / 1000);
    const dir = await releaseDir();
    const result = await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain('ok    family.img matches SHA256SUMS');
    const entries = await readdir(dir);
    expect(entries.filter((n) => n.endsWith('.minisig')).sort()).toEqual(SIGNED.map((n) => `${n}.minisig`).sort());
    expect(entries.filter((n) => n.startsWith('.'))).toEqual([]);
    for (const name of SIGNED) {
      for (const key of [['-p', keys.pub], ['-P', keys.base64]]) {
        const checked = await minisign(['-V', '-H', ...key, '-m', join(dir, name)]);
        expect(checked.exitCode, `${name}: ${checked.all}`).toBe(0);
        expect(checked.stdout).toContain('Signature and comment signature verified');
      }
      const comment = (await readFile(join(dir, `${name}.minisig`), 'utf8')).split('\n')[2]!;
      const match = /^trusted comment: timestamp:(\d+)\tfile:(.+)\thashed$/.exec(comment);
      expect(match?.[2], comment).toBe(name);
      expect(Number(match![1])).toBeGreaterThanOrEqual(started);
      expect(Number(match![1])).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    }
    // And minisign is really checking: the other key is refused.
    expect((await minisign(['-V', '-P', otherKeys.base64, '-m', join(dir, 'SHA256SUMS')])).exitCode).not.toBe(0);
  });

  it('refuses a directory whose files do not match SHA256SUMS, naming the file, and signs nothing', async () => {
    const dir = await releaseDir();
    const expected = sha(await readFile(join(dir, 'family.img.xz')));
    await flipByte(join(dir, 'family.img.xz'), 1000);
    const actual = sha(await readFile(join(dir, 'family.img.xz')));
    const result = await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`sha256 mismatch for family.img.xz: expected ${expected}, got ${actual}; refusing to sign ${dir}`);
    expect((await readdir(dir)).filter((n) => n.endsWith('.minisig'))).toEqual([]);
  });

  it('refuses a directory with a listed file missing, and one without SHA256SUMS', async () => {
    const dir = await releaseDir();
    await rm(join(dir, 'manifest.json'));
    const missing = await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`manifest.json is listed in SHA256SUMS but missing from ${dir}; nothing was signed`);
    await rm(join(dir, 'SHA256SUMS'));
    const noSums = await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD });
    expect(noSums.stderr).toContain(`${dir} has no SHA256SUMS`);
    expect((await readdir(dir)).filter((n) => n.endsWith('.minisig'))).toEqual([]);
  });
});

describe('simplex-pi verify, on a directory', () => {
  it('passes a correctly signed directory, with one line per check, given the key file or the bare key', async () => {
    const dir = await signedReleaseDir(keys);
    for (const pubkey of [keys.pub, keys.base64]) {
      const result = await cli(['verify', dir, '--pubkey', pubkey]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain(`ok    SHA256SUMS signature: key ID ${keys.keyId}, signed `);
      expect(result.stdout).toContain(`ok    family.img sha256 ${sha(await readFile(join(dir, 'family.img')))}`);
      for (const name of ['family.img.xz', 'family.rpi-imager.json', 'family.rpi-imager-manifest', 'manifest.json']) expect(result.stdout).toContain(`ok    ${name} sha256 `);
      expect(result.stdout).toContain(`ok    family.rpi-imager.json signature: key ID ${keys.keyId}`);
      expect(result.stdout).toContain(`ok    family.rpi-imager-manifest signature: key ID ${keys.keyId}`);
      expect(result.stdout).toContain(`verified: SHA256SUMS is signed by key ID ${keys.keyId}, 5 files match it, 3 signatures checked`);
      expect(result.stdout).not.toContain('FAIL');
    }
  });

  it.each<[string, (dir: string) => Promise<string[]>]>([
    [
      'a flipped byte in the image',
      async (dir) => {
        const expected = sha(await readFile(join(dir, 'family.img')));
        await flipByte(join(dir, 'family.img'), 4000);
        return [`sha256 mismatch for family.img: expected ${expected}, got ${sha(await readFile(join(dir, 'family.img')))}`];
      },
    ],
    [
      'a flipped byte in SHA256SUMS',
      async (dir) => {
        await flipByte(join(dir, 'SHA256SUMS'), 10);
        return [`signature of SHA256SUMS does not verify with key ID ${keys.keyId}`, 'Nothing else was checked'];
      },
    ],
    [
      'a flipped byte in an Imager JSON file',
      async (dir) => {
        const expected = sha(await readFile(join(dir, 'family.rpi-imager.json')));
        await flipByte(join(dir, 'family.rpi-imager.json'), 20);
        return [
          `sha256 mismatch for family.rpi-imager.json: expected ${expected}, got ${sha(await readFile(join(dir, 'family.rpi-imager.json')))}`,
          `signature of family.rpi-imager.json does not verify with key ID ${keys.keyId}`,
        ];
      },
    ],
    [
      'a changed signature in a .minisig',
      async (dir) => {
        const lines = (await readFile(join(dir, 'SHA256SUMS.minisig'), 'utf8')).split('\n');
        lines[1] = `${lines[1]!.slice(0, 50)}${lines[1]![50] === 'A' ? 'B' : 'A'}${lines[1]!.slice(51)}`;
        await writeFile(join(dir, 'SHA256SUMS.minisig'), lines.join('\n'));
        return [`signature of SHA256SUMS does not verify with key ID ${keys.keyId}`];
      },
    ],
    [
      'a flipped byte in the trusted comment of a .minisig',
      async (dir) => {
        const text = await readFile(join(dir, 'family.rpi-imager-manifest.minisig'), 'utf8');
        await flipByte(join(dir, 'family.rpi-imager-manifest.minisig'), text.indexOf('timestamp:') + 12);
        return [`the trusted comment in family.rpi-imager-manifest.minisig does not verify with key ID ${keys.keyId}: it was changed`];
      },
    ],
    [
      'a .minisig that is not base64',
      async (dir) => {
        const text = await readFile(join(dir, 'SHA256SUMS.minisig'), 'utf8');
        await writeFile(join(dir, 'SHA256SUMS.minisig'), text.replace(/\nRU/, '\nR_'));
        return ['SHA256SUMS.minisig: the signature is not valid base64 (character "_" at position 2)'];
      },
    ],
    [
      'a missing SHA256SUMS.minisig',
      async (dir) => {
        await rm(join(dir, 'SHA256SUMS.minisig'));
        return ['SHA256SUMS.minisig is missing'];
      },
    ],
    [
      'a missing signature of an Imager file',
      async (dir) => {
        await rm(join(dir, 'family.rpi-imager.json.minisig'));
        return ['family.rpi-imager.json.minisig is missing'];
      },
    ],
    [
      'a file listed in SHA256SUMS but missing',
      async (dir) => {
        await rm(join(dir, 'family.img.xz'));
        return ['family.img.xz is listed in SHA256SUMS but missing'];
      },
    ],
    [
      'a signed file passed off as another (a valid signature of another name)',
      async (dir) => {
        await copyFile(join(dir, 'family.rpi-imager.json'), join(dir, 'family.rpi-imager-manifest'));
        await copyFile(join(dir, 'family.rpi-imager.json.minisig'), join(dir, 'family.rpi-imager-manifest.minisig'));
        return ['family.rpi-imager-manifest.minisig is a valid signature of a file named family.rpi-imager.json, not of family.rpi-imager-manifest'];
      },
    ],
  ])('fails, saying exactly what, for %s', async (_what, tamper) => {
    const dir = await signedReleaseDir(keys);
    const messages = await tamper(dir);
    const result = await cli(['verify', dir, '--pubkey', keys.pub]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`error: verification of ${dir} FAILED`);
    for (const message of messages) expect(result.all).toContain(message);
    expect(result.stdout).toMatch(/^FAIL  /m);
    expect(result.stdout).not.toContain('verified:');
  });

  it('fails with both key ids for the wrong public key', async () => {
    const dir = await signedReleaseDir(keys);
    const result = await cli(['verify', dir, '--pubkey', otherKeys.pub]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`SHA256SUMS.minisig was signed by key ${keys.keyId}, not by the given key ${otherKeys.keyId}`);
  });

  it('names a --pubkey that is neither a key file nor a key, and a directory that does not exist', async () => {
    const dir = await signedReleaseDir(keys);
    const bad = await cli(['verify', dir, '--pubkey', 'RWnotakey']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('--pubkey RWnotakey is neither a public key file nor a minisign public key');
    const none = await cli(['verify', join(dir, 'nope'), '--pubkey', keys.base64]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain(`${join(dir, 'nope')} does not exist`);
  });

  it('accepts what the real minisign signs: keys from `minisign -G -W` and `-G` with a password, prehashed and legacy signatures', { timeout: 180_000 }, async () => {
    const kdir = await scratch('their-keys');
    const plain = { secret: join(kdir, 'w.key'), pub: join(kdir, 'w.pub') };
    expect((await minisign(['-G', '-W', '-s', plain.secret, '-p', plain.pub])).exitCode).toBe(0);
    // Signed by minisign itself, with its default trusted comments; legacy (-l) too.
    for (const legacy of [false, true]) {
      const dir = await releaseDir();
      const signing = await minisign(['-S', ...(legacy ? ['-l'] : []), '-s', plain.secret, '-m', ...SIGNED.map((n) => join(dir, n))]);
      expect(signing.exitCode, signing.all).toBe(0);
      const result = await cli(['verify', dir, '--pubkey', plain.pub]);
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain('3 signatures checked');
    }
    // Signed by simplex-pi with minisign's keys, unencrypted and encrypted.
    const dir = await releaseDir();
    expect((await cli(['sign', dir, '--key', plain.secret], { env: NO_PASSWORD })).exitCode).toBe(0);
    expect((await cli(['verify', dir, '--pubkey', plain.pub])).exitCode).toBe(0);
    const encrypted = { secret: join(kdir, 'e.key'), pub: join(kdir, 'e.pub') };
    const made = await minisign(['-G', '-s', encrypted.secret, '-p', encrypted.pub], 'their password\ntheir password\n');
    expect(made.exitCode, made.all).toBe(0);
    const signed = await cli(['sign', dir, '--key', encrypted.secret], { env: { SIMPLEX_PI_KEY_PASSWORD: 'their password' } });
    expect(signed.exitCode, signed.all).toBe(0);
    expect((await cli(['verify', dir, '--pubkey', encrypted.pub])).exitCode).toBe(0);
    // The first key no longer matches what is in the directory now.
    expect((await cli(['verify', dir, '--pubkey', plain.pub])).stderr).toContain('SHA256SUMS.minisig was signed by key');
  });
});

describe('simplex-pi verify, over HTTP from 127.0.0.1', () => {
  const server = new TestServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  async function serve(prefix: string, dir: string, skip: string[] = []): Promise<void> {
    for (const name of await readdir(dir)) if (!skip.includes(name)) server.serve(`/${prefix}/${name}`, await readFile(join(dir, name)));
  }

  it('downloads and checks every listed file once, and the signatures', async () => {
    const dir = await signedReleaseDir(keys);
    await serve('ok', dir);
    const result = await cli(['verify', `${server.url}/ok`, '--pubkey', keys.base64]);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain(`verifying ${server.url}/ok/ with key ID ${keys.keyId}`);
    expect(result.stdout).toContain('verified: SHA256SUMS is signed by key ID');
    expect(result.stdout).toContain('3 signatures checked');
    expect(server.requestsFor('/ok/family.img')).toHaveLength(1);
    expect(server.requestsFor('/ok/family.img.xz')).toHaveLength(1);
    // The build log is not in SHA256SUMS, so it is not fetched.
    expect(server.requestsFor('/ok/family.build.log')).toHaveLength(0);
  });

  it('fails for a changed image, a missing file, and a missing signature', async () => {
    const dir = await signedReleaseDir(keys);
    const expected = sha(await readFile(join(dir, 'family.img')));
    const changed = await readFile(join(dir, 'family.img'));
    changed[100]! ^= 0x80;
    await serve('bad', dir, ['family.img', 'family.img.xz', 'family.rpi-imager-manifest.minisig']);
    server.serve('/bad/family.img', changed);
    const result = await cli(['verify', `${server.url}/bad/`, '--pubkey', keys.pub]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`sha256 mismatch for family.img: expected ${expected}, got ${sha(changed)}`);
    expect(result.stderr).toContain('family.img.xz is listed in SHA256SUMS but missing');
    expect(result.stderr).toContain('family.rpi-imager-manifest.minisig is missing');
    expect(result.stderr).toContain('(3 problems)');
    await serve('nosig', dir, ['SHA256SUMS.minisig']);
    const unsigned = await cli(['verify', `${server.url}/nosig`, '--pubkey', keys.pub]);
    expect(unsigned.exitCode).toBe(1);
    expect(unsigned.stderr).toContain('SHA256SUMS.minisig is missing');
  });

  it('fails, naming the file, when a download breaks off', async () => {
    const dir = await signedReleaseDir(keys);
    await serve('cut', dir, ['family.img']);
    server.serve('/cut/family.img', { body: await readFile(join(dir, 'family.img')), cutAfter: 3000, cuts: 1 });
    const result = await cli(['verify', `${server.url}/cut`, '--pubkey', keys.pub]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`download of family.img from ${server.url}/cut/family.img broke off`);
  });

  // A streamed check stays near Node's own footprint (about 125 MiB with tsx); holding the image would add its size.
  it('streams a large image instead of holding it in memory', { timeout: 120_000 }, async () => {
    const dir = await releaseDir();
    const big = Buffer.alloc(384 * 1024 * 1024, 7);
    await writeFile(join(dir, 'family.img'), big);
    await writeFile(join(dir, 'SHA256SUMS'), (await readFile(join(dir, 'SHA256SUMS'), 'utf8')).replace(/^[0-9a-f]{64}(?=  family\.img\n)/m, sha(big)));
    expect((await cli(['sign', dir, '--key', keys.secret], { env: NO_PASSWORD })).exitCode).toBe(0);
    await serve('big', dir);
    await rm(dir, { recursive: true });
    const result = await execa('/usr/bin/time', ['-f', 'maxrss-kib=%M', 'node', join(REPO, 'bin/simplex-pi.mjs'), 'verify', `${server.url}/big`, '--pubkey', keys.base64], {
      reject: false,
      all: true,
      env: { CI: '1' },
    });
    expect(result.exitCode, result.all).toBe(0);
    const maxRss = Number(/maxrss-kib=(\d+)/.exec(result.stderr)?.[1]);
    expect(maxRss).toBeGreaterThan(0);
    expect(maxRss * 1024).toBeLessThan(big.length);
  });
});

describe('simplex-pi command line for releases', () => {
  it('names what sign and verify need', async () => {
    const sign = await cli(['sign', '/tmp']);
    expect(sign.stderr).toContain('sign needs --key FILE');
    const verify = await cli(['verify', '/tmp']);
    expect(verify.stderr).toContain('verify needs --pubkey');
    const keygen = await cli(['keygen']);
    expect(keygen.stderr).toContain('keygen needs --out DIR');
    const help = await cli(['--help']);
    expect(help.stdout).toContain('simplex-pi verify DIR|URL --pubkey FILE|KEY');
  });

  it('copies of a signed directory verify the same (nothing depends on the absolute path)', async () => {
    const dir = await signedReleaseDir(keys);
    const copy = join(await scratch('copy'), 'release');
    await cp(dir, copy, { recursive: true });
    expect((await cli(['verify', copy, '--pubkey', keys.base64])).exitCode).toBe(0);
  });
});
