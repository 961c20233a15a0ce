import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LOCK, describeChange, emptyLock, lockedHash, readLock, serializeLock, updatedLock, writeLock } from '../../builder/stages/simplexmq-lock.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const SMP = 'smp-server-ubuntu-22_04-aarch64';
const XFTP = 'xftp-server-ubuntu-22_04-aarch64';

describe('simplexmq.lock.json', () => {
  it('the lock that ships with simplex-pi is a valid lock', async () => {
    const lock = await readLock(DEFAULT_LOCK);
    expect(lock.lockfileVersion).toBe(1);
    // Whatever it holds is in the order --update-lock writes, so a refresh shows as the lines that changed.
    expect(await readFile(DEFAULT_LOCK, 'utf8')).toBe(serializeLock(lock));
  });

  it('a missing file is an empty lock; a damaged one is refused, naming the file and the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spi-lock-'));
    expect(await readLock(join(dir, 'absent.json'))).toEqual(emptyLock());
    await writeFile(join(dir, 'bad.json'), '{ "lockfileVersion": 1, "releases": { "6.5.2": { "x": "ABC" } } }');
    await expect(readLock(join(dir, 'bad.json'))).rejects.toThrow(/simplexmq lock file .*bad\.json is not a simplexmq lock file: releases\.6\.5\.2\.x: must be a lower-case sha256/);
    await writeFile(join(dir, 'torn.json'), '{ "lockfileVersion": 1, "rele');
    await expect(readLock(join(dir, 'torn.json'))).rejects.toThrow(/torn\.json is not JSON; restore it from git/);
  });

  it('an update adds and changes entries of one version, keeps the others, and lists each change', () => {
    const lock = { ...emptyLock(), releases: { '6.4.9': { [SMP]: A }, '6.5.2': { [SMP]: A, [XFTP]: B } } };
    const { lock: next, changes } = updatedLock(lock, '6.5.2', new Map([[SMP, B], [XFTP, B]]));
    expect(changes).toEqual([{ version: '6.5.2', asset: SMP, from: A, to: B }]);
    expect(changes.map(describeChange)).toEqual([`6.5.2 ${SMP}: ${A} -> ${B}`]);
    expect(lockedHash(next, '6.5.2', SMP)).toBe(B);
    expect(lockedHash(next, '6.4.9', SMP)).toBe(A);
    expect(lockedHash(lock, '6.5.2', SMP), 'the old lock is not changed').toBe(A);
    const added = updatedLock(next, '7.0.0', new Map([[SMP, A]]));
    expect(added.changes.map(describeChange)).toEqual([`7.0.0 ${SMP}: added ${A}`]);
    expect(updatedLock(next, '6.5.2', new Map([[SMP, B]])).changes).toEqual([]);
  });

  it('is written whole, versions in numeric order and assets sorted, and read back the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spi-lock-'));
    const path = join(dir, 'simplexmq.lock.json');
    const lock = { ...emptyLock(), releases: { '6.10.0': { [XFTP]: B, [SMP]: A }, '6.9.1': { [SMP]: B } } };
    await writeLock(path, lock);
    const text = await readFile(path, 'utf8');
    expect(text.indexOf('"6.9.1"')).toBeLessThan(text.indexOf('"6.10.0"'));
    expect(text.indexOf(SMP, text.indexOf('"6.10.0"'))).toBeLessThan(text.indexOf(XFTP));
    expect(await readLock(path)).toEqual({ ...lock, releases: { '6.9.1': { [SMP]: B }, '6.10.0': { [SMP]: A, [XFTP]: B } } });
    expect(await readdir(dir), 'no temporary file left').toEqual(['simplexmq.lock.json']);
  });
});
