import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile, copyFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSecrets } from '../../builder/image/secrets.ts';
import { cleanTree } from '../../builder/stages/seal.ts';
import { scratch as scratchDir } from '../helpers/env.ts';

async function put(root: string, path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}

/** A tree with what a real image has that looks like keys but is public: certificates, public keys, hostnames. */
async function cleanImageTree(): Promise<string> {
  const root = await scratchDir('secrets');
  const { publicKey } = generateKeyPairSync('ed25519');
  await put(root, 'etc/ssl/certs/ca-certificates.crt', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  await put(root, 'etc/ssh/ssh_host_ed25519_key.pub', 'ssh-ed25519 AAAA host\n');
  await put(root, 'usr/share/keys/release.pem', publicKey.export({ type: 'spki', format: 'pem' }) as string);
  await put(root, 'etc/machine-id', '');
  await put(root, 'usr/bin/tool', Buffer.alloc(2 * 1024 * 1024, 7));
  return root;
}

describe('secret detection', () => {
  it('passes a clean tree', async () => {
    expect(await findSecrets(await cleanImageTree())).toEqual([]);
  });

  it('finds planted keys of every kind, by name and by content, and names each file', async () => {
    const root = await cleanImageTree();
    const scratch = await scratchDir('keys');
    const pem = execFileSync('openssl', ['genpkey', '-algorithm', 'ED25519']).toString();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(scratch, 'id')]);
    const openssh = await readFile(join(scratch, 'id'));
    const torKey = Buffer.concat([Buffer.from('== ed25519v1-secret: type0 ==\0\0\0'), Buffer.alloc(64, 1)]);

    await put(root, 'etc/opt/simplex-smp1/ca.key', pem);
    await put(root, 'etc/opt/simplex-smp1/server.key', pem);
    await put(root, 'etc/opt/simplex-xftp/smp-server.ini', 'create_password = x\n');
    await put(root, 'usr/share/doc/innocent.txt', `notes\n${pem}`);
    await put(root, 'etc/ssh/ssh_host_ed25519_key', openssh);
    await put(root, 'root/.ssh/id_ed25519', openssh);
    await put(root, 'var/lib/tor/smp1/hs_ed25519_secret_key', torKey);
    await put(root, 'var/backups/renamed.bin', torKey);
    await put(root, 'var/lib/tor/smp1/authorized_clients/../alice.auth_private', 'x:descriptor:x25519:AAAA');
    await put(root, 'etc/ssl/private/ssl-cert-snakeoil.key', 'whatever');
    await put(root, 'var/lib/systemd/credential.secret', Buffer.alloc(32));
    await put(root, 'var/lib/gnupg/secret.asc', `-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQVYBGN${'A'.repeat(64)}\n-----END PGP PRIVATE KEY BLOCK-----\n`);

    const found = await findSecrets(root);
    expect(found.map((f) => f.path)).toEqual(
      [
        '/etc/opt/simplex-smp1/ca.key',
        '/etc/opt/simplex-smp1/server.key',
        '/etc/opt/simplex-xftp/smp-server.ini',
        '/etc/ssh/ssh_host_ed25519_key',
        '/etc/ssl/private/ssl-cert-snakeoil.key',
        '/root/.ssh/id_ed25519',
        '/usr/share/doc/innocent.txt',
        '/var/backups/renamed.bin',
        '/var/lib/gnupg/secret.asc',
        '/var/lib/systemd/credential.secret',
        '/var/lib/tor/smp1/alice.auth_private',
        '/var/lib/tor/smp1/hs_ed25519_secret_key',
      ].sort(),
    );
    expect(found.find((f) => f.path === '/var/lib/tor/smp1/hs_ed25519_secret_key')?.reason).toBe('Tor onion service secret key');
    expect(found.find((f) => f.path === '/root/.ssh/id_ed25519')?.reason).toBe('PEM or OpenSSH private key');
  });

  it('honours an allow-list entry for one path only', async () => {
    const root = await cleanImageTree();
    const pem = execFileSync('openssl', ['genpkey', '-algorithm', 'ED25519']).toString();
    await put(root, 'usr/share/doc/example/key.pem', pem);
    await put(root, 'usr/share/doc/example/other.pem', pem);
    const found = await findSecrets(root, new Map([['/usr/share/doc/example/key.pem', 'documentation example']]));
    expect(found.map((f) => f.path)).toEqual(['/usr/share/doc/example/other.pem']);
  });
});

describe('machine IDs', () => {
  it('finds a machine ID left in /etc/machine-id or dbus\'s copy, never "uninitialized" or an empty file', async () => {
    const root = await cleanImageTree();
    await put(root, 'etc/machine-id', '0123456789abcdef0123456789abcdef\n');
    await put(root, 'var/lib/dbus/machine-id', 'fedcba9876543210fedcba9876543210\n');
    expect((await findSecrets(root)).map((f) => f.path)).toEqual(['/etc/machine-id', '/var/lib/dbus/machine-id']);
    await put(root, 'etc/machine-id', 'uninitialized\n');
    await put(root, 'var/lib/dbus/machine-id', '');
    expect(await findSecrets(root)).toEqual([]);
  });
});

describe('cleaning the tree before sealing', () => {
  it('removes host keys, per-machine state and build leftovers, puts back the base\'s empty machine-id, keeps log directories', async () => {
    const root = await cleanImageTree();
    const scratch = await scratchDir('keys');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', join(scratch, 'k')]);
    await put(root, 'etc/ssh/ssh_host_rsa_key', await readFile(join(scratch, 'k')));
    await copyFile(join(scratch, 'k.pub'), join(root, 'etc/ssh/ssh_host_rsa_key.pub'));
    await put(root, 'etc/machine-id', '0123456789abcdef0123456789abcdef\n');
    await put(root, 'var/lib/dbus/machine-id', '0123456789abcdef0123456789abcdef\n');
    await put(root, 'var/lib/systemd/random-seed', Buffer.alloc(512, 3));
    await put(root, 'var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease', 'x');
    await put(root, 'var/cache/apt/archives/tor.deb', 'x');
    await put(root, 'var/log/apt/history.log', 'x');
    await put(root, 'var/log/tor/notices.log', 'x');
    await put(root, 'tmp/build-file', 'x');
    await put(root, 'var/cache/debconf/config.dat', 'Name: tzdata/Areas\n');
    await put(root, 'var/cache/debconf/config.dat-old', 'x');

    await cleanTree(root, { kind: 'empty', mode: 0o444 });

    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    expect(existsSync(join(root, 'var/lib/dbus/machine-id'))).toBe(false);
    expect(await readdir(join(root, 'etc/ssh'))).toEqual([]);
    expect(await readdir(join(root, 'var/lib/apt/lists'))).toEqual([]);
    expect(await readdir(join(root, 'var/cache/apt/archives'))).toEqual([]);
    expect((await readdir(join(root, 'var/log'))).sort()).toEqual(['apt', 'tor']);
    expect(await readdir(join(root, 'var/log/tor'))).toEqual([]);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
    // debconf's answers belong to the image: later package upgrades on the Pi read them.
    expect(await readdir(join(root, 'var/cache/debconf'))).toEqual(['config.dat']);
    expect(await findSecrets(root)).toEqual([]);
  });
});

describe('no false alarms on programs that merely name key formats', () => {
  it.each([
    ['gpgv-like string table', Buffer.from('\0armor\0PGP PRIVATE KEY BLOCK\0PGP PUBLIC KEY BLOCK\0')],
    ['libcrypto-like strings', Buffer.from('\0-----BEGIN \0ENCRYPTED PRIVATE KEY\0-----BEGIN PRIVATE KEY-----\0')],
    ['tor-like format string', Buffer.from('\0== %s: %s ==\0ed25519v1-secret\0')],
  ])('%s', async (_name, content) => {
    const root = await cleanImageTree();
    await put(root, 'usr/bin/program', content);
    expect(await findSecrets(root)).toEqual([]);
  });
});
