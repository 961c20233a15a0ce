import { lstat, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { settleTree } from '../../builder/image/settle-tree.ts';
import { scratch } from '../helpers/env.ts';

// settle-tree on a real directory tree: the times mke2fs -d copies into the image, and the count it is sized by.

const EPOCH = 1_750_000_000;

describe('settleTree', () => {
  it('clamps every time to the epoch, keeps older ones, and leaves each directory with the time it set, though the walk read it afterwards', async () => {
    const root = await scratch('settle');
    await mkdir(join(root, 'etc/sub'), { recursive: true });
    await writeFile(join(root, 'etc/new.conf'), 'written by the build\n');
    await writeFile(join(root, 'etc/sub/old'), 'from a package\n');
    await utimes(join(root, 'etc/sub/old'), 1_600_000_000, 1_600_000_000);
    await symlink('sub/old', join(root, 'etc/link'));
    const count = await settleTree(root, EPOCH, 4096);
    const times = async (path: string) => {
      const info = await lstat(path);
      return [info.atimeMs / 1000, info.mtimeMs / 1000];
    };
    expect(await times(join(root, 'etc/new.conf'))).toEqual([EPOCH, EPOCH]);
    expect(await times(join(root, 'etc/sub/old'))).toEqual([1_600_000_000, 1_600_000_000]);
    expect(await times(join(root, 'etc/link'))).toEqual([EPOCH, EPOCH]);
    for (const dir of [root, join(root, 'etc'), join(root, 'etc/sub')]) expect(await times(dir), dir).toEqual([EPOCH, EPOCH]);
    // 3 directories, 2 files, a link: 6 inodes; the files take a block each, each directory one.
    expect(count).toEqual({ inodes: 6, dataBytes: 2 * 4096 + 3 * 4096 });
    // The same tree again gives the same count, whatever its times now.
    expect(await settleTree(root, EPOCH, 4096)).toEqual(count);
  });
});
