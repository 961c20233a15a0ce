import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { walk } from '../../builder/fs-walk.ts';
import { scratch } from '../helpers/env.ts';

// The one directory walker of secrets.ts (image scan), seal.ts (emptying build-host state) and render/tree.ts
// (cache-key digests): what each of them relies on.

async function tree(): Promise<string> {
  const root = await scratch('walk');
  await mkdir(join(root, 'b/inner'), { recursive: true });
  await mkdir(join(root, 'a'));
  await writeFile(join(root, 'b/inner/file'), 'x');
  await writeFile(join(root, 'a/file'), 'x');
  await writeFile(join(root, 'c'), 'x');
  await symlink('b', join(root, 'link-to-b'));
  return root;
}

describe('walk', () => {
  it('meets every entry once, in name order when sorted, each directory before what is in it, links not followed', async () => {
    const root = await tree();
    const seen: string[] = [];
    await walk(root, ({ path }) => void seen.push(path), { sorted: true });
    expect(seen).toEqual(['a', 'a/file', 'b', 'b/inner', 'b/inner/file', 'c', 'link-to-b']);
  });

  it('does not enter a directory its visitor returns false for', async () => {
    const root = await tree();
    const seen: string[] = [];
    await walk(root, ({ path }) => (seen.push(path), path !== 'b'), { sorted: true });
    expect(seen).toEqual(['a', 'a/file', 'b', 'c', 'link-to-b']);
  });

  it('gives the host path of each entry', async () => {
    const root = await tree();
    const full: string[] = [];
    await walk(root, (entry) => void full.push(entry.full), { sorted: true });
    expect(full[0]).toBe(join(root, 'a'));
    expect(full).toContain(join(root, 'b/inner/file'));
  });

  it('fails on a directory it cannot read, unless told to skip it', async () => {
    const missing = join(await scratch('walk'), 'missing');
    await expect(walk(missing, () => undefined)).rejects.toThrow(/ENOENT/);
    await expect(walk(missing, () => undefined, { skipUnreadable: true })).resolves.toBeUndefined();
  });
});
