import { lstat, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import { atomicWrite, ensureDir, syncTree } from '../../builder/device/files.ts';
import { isRoot, scratch } from '../helpers/env.ts';

/**
 * First boot runs as root and writes into directories that debian-tor and the relay user own (their onion
 * service and configuration directories). Either of them can put a symbolic link where a file or directory of
 * theirs was; root must never follow it (security review L12). Here the links are planted as such a user could,
 * towards a root-owned file and directory that must come out unchanged.
 */
const SERVICE_USER = { uid: 65534, gid: 65534 };

describe.runIf(isRoot)('the device program writes only what it means to, whatever a service user put in its place', () => {
  let dir: string;
  let victimFile: string;
  let victimDir: string;

  beforeEach(async () => {
    dir = await scratch('device-files');
    victimFile = join(dir, 'victim');
    await writeFile(victimFile, 'root-owned\n', { mode: 0o644 });
    victimDir = join(dir, 'victim-dir');
    await mkdir(victimDir, { mode: 0o755 });
  });

  const unchanged = async () => {
    const file = await stat(victimFile);
    expect([file.mode & 0o7777, file.uid, await readFile(victimFile, 'utf8')]).toEqual([0o644, 0, 'root-owned\n']);
    const directory = await stat(victimDir);
    expect([directory.mode & 0o7777, directory.uid, await readdir(victimDir)]).toEqual([0o755, 0, []]);
  };

  it('ensureDir makes a directory with its owner and mode, and sets both on one that exists', async () => {
    const made = join(dir, 'service/authorized_clients');
    await ensureDir(made, 0o700, SERVICE_USER);
    expect((await stat(made)).mode & 0o7777).toBe(0o700);
    expect((await stat(made)).uid).toBe(SERVICE_USER.uid);
    const existing = join(dir, 'existing');
    await mkdir(existing, { mode: 0o755 });
    await ensureDir(existing, 0o700, SERVICE_USER);
    expect([(await stat(existing)).mode & 0o7777, (await stat(existing)).uid]).toEqual([0o700, SERVICE_USER.uid]);
  });

  it('ensureDir refuses a symbolic link where the directory should be, and changes nothing it points to', async () => {
    const service = join(dir, 'simplex-smp1');
    await symlink(victimDir, service);
    await expect(ensureDir(service, 0o700, SERVICE_USER)).rejects.toThrow(`${service} is a symbolic link where a directory should be`);
    // A link to a file, and a file, likewise.
    const toFile = join(dir, 'to-file');
    await symlink(victimFile, toFile);
    await expect(ensureDir(toFile, 0o700, SERVICE_USER)).rejects.toThrow('is a symbolic link');
    await expect(ensureDir(victimFile, 0o700, SERVICE_USER)).rejects.toThrow(`${victimFile} is not a directory where a directory should be`);
    expect((await lstat(service)).isSymbolicLink()).toBe(true);
    await unchanged();
  });

  it('ensureDir and atomicWrite refuse a symbolic link on the way, and create or write nothing where it points', async () => {
    // debian-tor owns /var/lib/tor/<service>: a link there would otherwise lead root's mkdir, chown and writes for
    // <service>/authorized_clients into any directory.
    const service = join(dir, 'simplex-smp2');
    await symlink(victimDir, service);
    await expect(ensureDir(join(service, 'authorized_clients'), 0o700, SERVICE_USER)).rejects.toThrow(`${service} is a symbolic link where a directory should be`);
    await expect(atomicWrite(join(service, 'authorized_clients', 'alice.auth'), 'descriptor:x25519:X\n', 0o600, SERVICE_USER)).rejects.toThrow(
      `${service} is a symbolic link where a directory should be`,
    );
    await unchanged();
  });

  it('a directory missing on the way is made; a file missing says where, by its name', async () => {
    await ensureDir(join(dir, 'a/b/c'), 0o700);
    expect((await stat(join(dir, 'a/b/c'))).isDirectory()).toBe(true);
    const error = await atomicWrite(join(dir, 'missing/file'), 'x', 0o600).catch((e: Error) => e);
    expect((error as Error).message).toContain(join(dir, 'missing'));
    expect((error as Error).message).not.toContain('/proc/self/fd');
  });

  it('atomicWrite replaces a symbolic link planted at the file or at its temporary file, and never writes through it', async () => {
    const service = join(dir, 'service');
    await ensureDir(service, 0o700, SERVICE_USER);
    await symlink(victimFile, join(service, 'hostname'));
    await symlink(victimFile, join(service, 'hs_ed25519_secret_key.new'));
    await atomicWrite(join(service, 'hostname'), 'abc.onion\n', 0o600, SERVICE_USER);
    await atomicWrite(join(service, 'hs_ed25519_secret_key'), 'secret', 0o600, SERVICE_USER);
    for (const name of ['hostname', 'hs_ed25519_secret_key']) {
      const written = await lstat(join(service, name));
      expect([written.isFile(), written.mode & 0o7777, written.uid, written.gid]).toEqual([true, 0o600, SERVICE_USER.uid, SERVICE_USER.gid]);
    }
    expect(await readFile(join(service, 'hostname'), 'utf8')).toBe('abc.onion\n');
    expect((await readdir(service)).sort()).toEqual(['hostname', 'hs_ed25519_secret_key']);
    await unchanged();
  });

  it('atomicWrite refuses a directory that is a symbolic link, and writes nothing where it points', async () => {
    const service = join(dir, 'simplex-xftp');
    await symlink(victimDir, service);
    await expect(atomicWrite(join(service, 'file-server.ini'), '[AUTH]\n', 0o600, SERVICE_USER)).rejects.toThrow(`${service} is a symbolic link where a directory should be`);
    await unchanged();
  });

  it('an error names the file people know, not the descriptor it was written through', async () => {
    const service = join(dir, 'service');
    await mkdir(join(service, 'busy.new'), { recursive: true });
    await writeFile(join(service, 'busy.new', 'x'), '');
    const error = await atomicWrite(join(service, 'busy'), 'x', 0o600).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(join(service, 'busy.new'));
    expect((error as Error).message).not.toContain('/proc/self/fd');
  });

  it('syncTree flushes the files and passes over links and named pipes: never followed, never waited on', async () => {
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'sub'), { recursive: true });
    await writeFile(join(tree, 'sub', 'ca.crt'), 'x');
    await symlink(victimFile, join(tree, 'link'));
    await syncTree(tree);
    execFileSync('mkfifo', [join(tree, 'pipe')]);
    // A pipe is not a file to readdir, so it is passed over; it is never opened (which would wait for a writer).
    await syncTree(tree);
    await unchanged();
  });
});
