import { lstat, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { binaryIsLinked, currentRelease, linkBinary, pruneReleases, releaseDir, releasesOnCard, switchRelease } from '../../builder/device/relay-releases.ts';
import { decide } from '../../builder/device/update.ts';
import { takeUpdateLock, updateUnderWay } from '../../builder/device/update-lock.ts';
import { BINARY_DIR } from '../../builder/plan/layout.ts';
import { compareVersions } from '../../builder/update/simplexmq-version.ts';
import { scratch } from '../helpers/env.ts';

describe('simplexmq releases side by side (device/relay-releases.ts)', () => {
  const release = async (root: string, version: string) => {
    await mkdir(releaseDir(version, root), { recursive: true });
    await writeFile(join(releaseDir(version, root), 'smp-server'), `smp ${version}\n`);
  };

  it('the binary is a relative link through the current release: switching the link switches what runs, in one rename', async () => {
    const root = await scratch('releases');
    await release(root, '6.5.2');
    await release(root, '6.5.3');
    await switchRelease('6.5.2', root);
    await linkBinary('smp-server', root);
    const binary = join(root, BINARY_DIR, 'smp-server');
    expect((await lstat(binary)).isSymbolicLink()).toBe(true);
    // Relative, so it resolves the same inside the mounted image and on the Pi.
    expect(await readlink(binary)).not.toMatch(/^\//);
    expect(await binaryIsLinked('smp-server', root)).toBe(true);
    expect(await readFile(binary, 'utf8')).toBe('smp 6.5.2\n');
    await switchRelease('6.5.3', root);
    expect(await currentRelease(root)).toBe('6.5.3');
    expect(await readFile(binary, 'utf8')).toBe('smp 6.5.3\n');
    await switchRelease('6.5.2', root);
    expect(await readFile(binary, 'utf8')).toBe('smp 6.5.2\n');
  });

  it('refuses a release name that could leave the folder, and a card with a file where the link should be is not "linked"', async () => {
    const root = await scratch('releases-bad');
    await expect(switchRelease('../../bin', root)).rejects.toThrow(/not a simplexmq release name/);
    await mkdir(join(root, BINARY_DIR), { recursive: true });
    await writeFile(join(root, BINARY_DIR, 'xftp-server'), 'a file');
    expect(await binaryIsLinked('xftp-server', root)).toBe(false);
    expect(await currentRelease(root)).toBeUndefined();
  });

  it('prunes every release but the ones kept', async () => {
    const root = await scratch('releases-prune');
    for (const v of ['6.4.0', '6.5.2', '6.5.3']) await release(root, v);
    expect(await pruneReleases(['6.5.3', '6.5.2'], root)).toEqual(['6.4.0']);
    expect(await releasesOnCard(root)).toEqual(['6.5.2', '6.5.3']);
  });
});

describe('which bundle an update applies (device/update.ts decide)', () => {
  it('orders simplexmq versions as releases: numbers, then a pre-release before its release', () => {
    expect(compareVersions('6.5.3', '6.5.2')).toBe(1);
    expect(compareVersions('6.5.10', '6.5.9')).toBe(1);
    expect(compareVersions('6.5.2', '6.5.2.0')).toBe(0);
    expect(compareVersions('7.0.0-beta.2', '7.0.0')).toBe(-1);
    expect(compareVersions('7.0.0-beta.10', '7.0.0-beta.9')).toBe(1);
  });

  it('installs a newer release; the same is nothing to do; an older one is refused unless --downgrade, and nothing with --if-newer', () => {
    expect(decide('6.5.2', '6.5.3', { ifNewer: false, downgrade: false })).toEqual({ install: true });
    expect(decide('6.5.2', '6.5.2', { ifNewer: false, downgrade: false })).toMatchObject({ install: false, refused: false });
    expect(decide('6.5.3', '6.5.2', { ifNewer: false, downgrade: false })).toMatchObject({ install: false, refused: true, why: expect.stringMatching(/replayed.*--downgrade/) });
    expect(decide('6.5.3', '6.5.2', { ifNewer: false, downgrade: true })).toEqual({ install: true });
    expect(decide('6.5.3', '6.5.2', { ifNewer: true, downgrade: false })).toMatchObject({ install: false, refused: false });
  });
});

describe('one update at a time (device/update-lock.ts)', () => {
  it('a second update is refused while the first holds the lock; a lock left by a dead process is taken over', async () => {
    const lock = join(await scratch('update-lock'), 'update.lock');
    const release = await takeUpdateLock(lock);
    expect(await updateUnderWay(lock)).toBe(process.pid);
    await expect(takeUpdateLock(lock)).rejects.toThrow(/another relay update is under way/);
    await release();
    expect(await updateUnderWay(lock)).toBeUndefined();
    // A process that no longer exists (pid 2^22 + 1 is above Linux's pid_max).
    await writeFile(lock, `${2 ** 22 + 1}\n`);
    const again = await takeUpdateLock(lock);
    expect(await updateUnderWay(lock)).toBe(process.pid);
    await again();
  });
});
