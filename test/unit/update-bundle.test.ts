import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { tarMembers } from '../../builder/device/encrypt.ts';
import { type KeyPair, defaultTrustedComment, formatSignature, generateKeyPair, parsePublicKey, signMessage } from '../../builder/signing/minisign.ts';
import { UPDATE_MANIFEST_MEMBER, updateBundleName } from '../../builder/update/format.ts';
import { openUpdateBundle } from '../../builder/update/open-bundle.ts';
import { writeUpdateBundle } from '../../builder/update/write-bundle.ts';
import { buildStandin } from '../fixtures/standin/build.ts';

const VERSION = '6.5.3';
const signed = (key: KeyPair, bytes: Buffer, name: string) => formatSignature(signMessage(key.secretKey, { bytes }, { trustedComment: defaultTrustedComment(name) }));

describe('relay update bundles (update/write-bundle.ts, update/open-bundle.ts)', () => {
  let dir: string;
  let binaries: { 'smp-server': string; 'xftp-server': string };
  let bundle: Buffer;
  let bundlePath: string;
  const project = generateKeyPair();
  const stranger = generateKeyPair();
  const createdAt = new Date('2026-12-01T00:00:00Z');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'spi-update-'));
    binaries = {
      'smp-server': await buildStandin({ kind: 'smp', version: `${VERSION}.0`, output: join(dir, 'smp-server') }),
      'xftp-server': await buildStandin({ kind: 'xftp', version: `${VERSION}.0`, output: join(dir, 'xftp-server') }),
    };
    ({ path: bundlePath } = await writeUpdateBundle({ version: VERSION, binaries, outDir: dir, createdAt }));
    bundle = await readFile(bundlePath);
  }, 120_000);

  it('holds the manifest and both aarch64 binaries, and is the same file each time it is written from the same inputs', async () => {
    expect(bundlePath).toBe(join(dir, updateBundleName(VERSION)));
    const listed = (await execa('tar', ['-tvf', bundlePath])).stdout;
    expect(listed).toMatch(/^-rw-r--r-- 0\/0 .* manifest\.json$/m);
    expect(listed).toMatch(/^-rwxr-xr-x 0\/0 .* bin\/smp-server$/m);
    const again = await mkdtemp(join(tmpdir(), 'spi-update-'));
    await writeUpdateBundle({ version: VERSION, binaries, outDir: again, createdAt });
    expect(await readFile(join(again, updateBundleName(VERSION)))).toEqual(bundle);
    expect((await readdir(dir)).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('opens when signed with the update key, by our signer and by the minisign CLI alike', async () => {
    const opened = await openUpdateBundle(bundle, signed(project, bundle, 'bundle'), project.publicKey, 'bundle.tar');
    expect(opened.manifest.simplexmq).toBe(VERSION);
    expect(opened.binaries.get('smp-server')).toEqual(await readFile(binaries['smp-server']));
    expect(opened.binaries.get('xftp-server')).toEqual(await readFile(binaries['xftp-server']));

    // The release signs with its own key file; the real minisign's signature opens the same way.
    await execa('minisign', ['-G', '-W', '-p', join(dir, 'cli.pub'), '-s', join(dir, 'cli.key')]);
    await execa('minisign', ['-S', '-s', join(dir, 'cli.key'), '-m', bundlePath]);
    const cliKey = parsePublicKey(await readFile(join(dir, 'cli.pub'), 'utf8'), 'cli.pub');
    const byCli = await openUpdateBundle(bundle, await readFile(`${bundlePath}.minisig`), cliKey, bundlePath);
    expect(byCli.trustedComment).toContain(updateBundleName(VERSION));
  });

  it('refuses, before reading the tar, a bundle with one byte changed or signed by another key', async () => {
    const signature = signed(project, bundle, 'bundle');
    for (const at of [10, Math.floor(bundle.length / 2), bundle.length - 1]) {
      const flipped = Buffer.from(bundle);
      flipped[at] = flipped[at]! ^ 0x01;
      await expect(openUpdateBundle(flipped, signature, project.publicKey, 'bundle.tar'), `byte ${at}`).rejects.toThrow(
        /signature of bundle\.tar does not verify with key ID [0-9A-F]{16}: .*or it was damaged: nothing was changed/,
      );
    }
    await expect(openUpdateBundle(bundle, signed(stranger, bundle, 'bundle'), project.publicKey, 'bundle.tar')).rejects.toThrow(
      /bundle\.tar\.minisig was signed by key [0-9A-F]{16}, not by the given key [0-9A-F]{16}; the bundle is not from the holder of the update key/,
    );
    // Not a tar at all, but signed: the signature is checked first, and passes; the tar is refused after.
    const junk = Buffer.from('not a tar');
    await expect(openUpdateBundle(junk, signed(project, junk, 'junk'), project.publicKey, 'junk.tar')).rejects.toThrow(/junk\.tar: (not a tar archive|has no manifest\.json)/);
  });

  /** A bundle with the right signature but made by hand: what the checks after the signature must catch. */
  const forged = async (manifest: object, members: Array<{ name: string; content: Buffer }>) => {
    const tar = await tarMembers([{ name: UPDATE_MANIFEST_MEMBER, content: Buffer.from(JSON.stringify(manifest)) }, ...members], createdAt);
    return openUpdateBundle(tar, signed(project, tar, 'forged'), project.publicKey, 'forged.tar');
  };

  it('refuses a signed bundle whose binary does not match its manifest, is not aarch64, or that holds more than it lists', async () => {
    const smp = await readFile(binaries['smp-server']);
    const xftp = await readFile(binaries['xftp-server']);
    const x86 = await readFile(process.execPath);
    const entry = (name: string, content: Buffer) => ({ name, member: `bin/${name}`, sha256: createHash('sha256').update(content).digest('hex'), bytes: content.length });
    const manifest = (smpContent: Buffer) => ({ format: 'simplex-pi-relay-update', formatVersion: 1, simplexmq: VERSION, createdAt: createdAt.toISOString(), binaries: [entry('smp-server', smpContent), entry('xftp-server', xftp)] });

    const changed = Buffer.from(smp);
    changed[changed.length - 3] = changed[changed.length - 3]! ^ 0x01;
    await expect(forged(manifest(smp), [{ name: 'bin/smp-server', content: changed }, { name: 'bin/xftp-server', content: xftp }])).rejects.toThrow(
      /forged\.tar: bin\/smp-server has sha256 [0-9a-f]{64} \(\d+ bytes\), but its manifest says [0-9a-f]{64} \(\d+ bytes\); nothing was changed/,
    );
    await expect(forged(manifest(x86), [{ name: 'bin/smp-server', content: x86 }, { name: 'bin/xftp-server', content: xftp }])).rejects.toThrow(/bin\/smp-server is built for x86-64, not aarch64; nothing was changed/);
    await expect(forged(manifest(smp), [{ name: 'bin/smp-server', content: smp }, { name: 'bin/xftp-server', content: xftp }, { name: 'bin/extra', content: xftp }])).rejects.toThrow(/holds bin\/extra, which its manifest does not list/);
    await expect(forged({ ...manifest(smp), formatVersion: 2 }, [])).rejects.toThrow(/formatVersion: must be 1: a bundle for another version of simplex-pi/);
    await expect(forged({ ...manifest(smp), binaries: [entry('smp-server', smp)] }, [{ name: 'bin/smp-server', content: smp }])).rejects.toThrow(/binaries: must list smp-server and xftp-server once each/);
  });

  it('is not written for a binary that is not aarch64', async () => {
    const out = await mkdtemp(join(tmpdir(), 'spi-update-'));
    await writeFile(join(out, 'x86'), await readFile(process.execPath));
    await expect(writeUpdateBundle({ version: VERSION, binaries: { ...binaries, 'smp-server': join(out, 'x86') }, outDir: out, createdAt })).rejects.toThrow(/smp-server .* is built for x86-64, not aarch64: no update bundle was written/);
    expect(await readdir(out)).toEqual(['x86']);
  });
});
