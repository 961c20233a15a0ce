import { statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STORAGE_RESERVE_BYTES, checkQuota, checkXftpQuota, quotaBytes } from '../../builder/device/storage.ts';
import { scratch } from '../helpers/env.ts';

const GiB = 1024 ** 3;

describe('the XFTP quota against the card', () => {
  it('reads sizes as simplexmq does: gb, mb, kb in powers of 1024, a bare number in bytes', () => {
    expect(quotaBytes('10gb')).toBe(10 * GiB);
    expect(quotaBytes('512mb')).toBe(512 * 1024 ** 2);
    expect(quotaBytes('64kb')).toBe(65536);
    expect(quotaBytes('1000')).toBe(1000);
    expect(() => quotaBytes('10GB')).toThrow(/not a simplexmq file size/);
  });

  it('fits when what the relay may still add leaves the reserve free; what it stores already counts as added', () => {
    expect(checkQuota('10gb', 0, 10 * GiB + STORAGE_RESERVE_BYTES).ok).toBe(true);
    const tight = checkQuota('10gb', 0, 10 * GiB);
    expect(tight.ok).toBe(false);
    expect(tight.message).toMatch(/^XFTP quota 10gb is more than the card can hold: 10\.0 GiB free, 0\.0 GiB already stored, .*Lower xftp\.quota/);
    // 8 GiB already stored: only 2 GiB more may come.
    expect(checkQuota('10gb', 8 * GiB, 3 * GiB).ok).toBe(true);
  });

  it('measures the real files directory and file system', async () => {
    const dir = await scratch('quota');
    await writeFile(join(dir, 'chunk'), Buffer.alloc(4096));
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    const check = await checkXftpQuota('1kb', dir);
    expect(check.storedBytes).toBe(4096);
    expect(Math.abs(check.freeBytes - free)).toBeLessThan(64 * 1024 ** 2);
    expect((await checkXftpQuota(`${Math.ceil(free / 1024) + 1}kb`, dir)).ok).toBe(false);
  });

  it('a caller that may not read the relay\'s files (the export unit) says so, and judges as if nothing were stored', () => {
    const GiB = 1024 ** 3;
    const unknown = checkQuota('1gb', undefined, 2 * GiB);
    expect(unknown.ok).toBe(true);
    expect(unknown.message).toBe('XFTP quota 1gb fits: 2.0 GiB free on the card, stored files not counted (only root may read them)');
    // With 0.9 GiB stored the quota would fit in 1 GiB free; not knowing that, the verdict is the stricter one.
    expect(checkQuota('1gb', 0.9 * GiB, 1 * GiB).ok).toBe(true);
    expect(checkQuota('1gb', undefined, 1 * GiB).ok).toBe(false);
  });
});
