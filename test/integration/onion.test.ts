import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { base32, newOnionKey, onionAddress, torPublicKeyFile, torSecretKeyFile } from '../../builder/device/onion.ts';
import { scratch } from '../helpers/env.ts';

describe('onion addresses and Tor key files', () => {
  it("reproduces Tor's published test vector (src/test/test_hs_common.c)", () => {
    const publicKey = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex');
    expect(onionAddress(publicKey)).toBe('25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion');
  });

  it('encodes base32 like RFC 4648, lower case, without padding', () => {
    expect(base32(Buffer.from('foobar'))).toBe('mzxw6ytboi');
    expect(base32(Buffer.from('f'))).toBe('my');
  });

  /** A service directory holding only our secret key file (and, optionally, a hostname file), served by a real Tor. */
  async function torServes(prefilledHostname?: string) {
    const dir = await scratch('onion');
    const hsDir = join(dir, 'hs');
    await mkdir(hsDir, { mode: 0o700 });
    await chmod(hsDir, 0o700);
    await mkdir(join(dir, 'data'), { mode: 0o700 });
    const key = newOnionKey();
    // Only the secret key: Tor must derive the rest, so both the format and our derivation are checked.
    await writeFile(join(hsDir, 'hs_ed25519_secret_key'), torSecretKeyFile(key.seed), { mode: 0o600 });
    if (prefilledHostname) await writeFile(join(hsDir, 'hostname'), prefilledHostname);
    const torrc = [
      `DataDirectory ${join(dir, 'data')}`,
      'DisableNetwork 1',
      'SocksPort 0',
      'ControlPort 0',
      `HiddenServiceDir ${hsDir}`,
      'HiddenServicePort 5223 127.0.0.1:5301',
      '',
    ].join('\n');
    await writeFile(join(dir, 'torrc'), torrc);
    const tor = execa('tor', ['--defaults-torrc', '/dev/null', '-f', join(dir, 'torrc')], { reject: false, all: true });
    let hostname = '';
    for (let i = 0; i < 200 && (!hostname || hostname === prefilledHostname); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      hostname = await readFile(join(hsDir, 'hostname'), 'utf8').catch(() => '');
    }
    tor.kill('SIGTERM');
    const output = String((await tor).all);
    return { key, hostname, output, hsDir };
  }

  it('matches the hostname and public key file real Tor derives from our secret key file (DisableNetwork 1)', { timeout: 60_000 }, async () => {
    const { key, hostname, output, hsDir } = await torServes();
    expect(hostname, output).toBe(`${key.address}\n`);
    expect((await readFile(join(hsDir, 'hs_ed25519_public_key'))).equals(torPublicKeyFile(key.publicKey))).toBe(true);
    expect(output).toContain('Regenerating');
  });

  // The VM test (test/e2e) reads the hostname file while Tor runs the service as Tor's own word for the address:
  // that holds because Tor replaces a hostname file that differs from what it derives from the key.
  it('real Tor replaces a hostname file that does not match the key', { timeout: 60_000 }, async () => {
    const wrong = `${'a'.repeat(56)}.onion\n`;
    const { key, hostname, output } = await torServes(wrong);
    expect(hostname, output).toBe(`${key.address}\n`);
  });
});
