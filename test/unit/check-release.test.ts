import { createHash } from 'node:crypto';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { checkReleaseDirectory } from '../../builder/publish/check-release.ts';
import { scratch } from '../helpers/env.ts';

// A release directory before sign and publish: exactly what its SHA256SUMS lists, plus the signatures of the
// files that are signed. ci/release.ts runs it on the directory the build job handed over (test/integration/release.test.ts).

const FILES: Record<string, string> = { 'solo.img.xz': 'image bytes', 'solo.manifest.json': '{}\n', 'os-list.json': '{"os_list":[]}\n' };
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('checkReleaseDirectory', () => {
  let dir: string;

  beforeEach(async () => {
    dir = join(await scratch('check-release'), 'release');
    await mkdir(dir);
    for (const [name, text] of Object.entries(FILES)) await writeFile(join(dir, name), text);
    await writeFile(join(dir, 'SHA256SUMS'), Object.entries(FILES).map(([name, text]) => `${sha256(text)}  ${name}\n`).join(''));
  });

  const problems = async () => {
    try {
      await checkReleaseDirectory(dir, 'nothing was signed');
    } catch (error) {
      return (error as Error).message.split('\n').filter((l) => l.startsWith('  - ')).map((l) => l.slice(4));
    }
    return [];
  };

  it('accepts the listed files, SHA256SUMS and signatures of SHA256SUMS and of the signed files', async () => {
    for (const name of ['SHA256SUMS.minisig', 'os-list.json.minisig', 'solo.manifest.json.minisig']) await writeFile(join(dir, name), 'sig\n');
    expect(await checkReleaseDirectory(dir, 'nothing was signed')).toEqual({
      listed: ['solo.img.xz', 'solo.manifest.json', 'os-list.json'],
      signatures: ['SHA256SUMS.minisig', 'os-list.json.minisig', 'solo.manifest.json.minisig'],
    });
  });

  it('names every problem at once, and says what was not done', async () => {
    await writeFile(join(dir, 'solo.img.xz'), 'other bytes');
    await rm(join(dir, 'os-list.json'));
    await writeFile(join(dir, 'notes.md'), 'x');
    await expect(checkReleaseDirectory(dir, 'nothing was signed')).rejects.toThrow(
      `${dir} does not match its SHA256SUMS; nothing was signed:\n` +
        `  - solo.img.xz has sha256 ${sha256('other bytes')}, but SHA256SUMS says ${sha256('image bytes')}\n` +
        '  - os-list.json is listed in SHA256SUMS but missing\n' +
        '  - notes.md (a file) is in the release directory but not listed in SHA256SUMS\n',
    );
  });

  it('refuses what a download or a careless copy could add: hidden files, directories, links, stray signatures', async () => {
    await writeFile(join(dir, '.hidden'), 'x');
    await mkdir(join(dir, 'sub'));
    await symlink('/etc/hostname', join(dir, 'link'));
    // A signature of a file that is not signed (the image: SHA256SUMS vouches for it), and of an unlisted file.
    await writeFile(join(dir, 'solo.img.xz.minisig'), 'sig\n');
    await writeFile(join(dir, 'other.json.minisig'), 'sig\n');
    expect(await problems()).toEqual([
      '.hidden (a file) is in the release directory but not listed in SHA256SUMS',
      'link (a symbolic link) is in the release directory but not listed in SHA256SUMS',
      'other.json.minisig (a file) is in the release directory but not listed in SHA256SUMS',
      'solo.img.xz.minisig (a file) is in the release directory but not listed in SHA256SUMS',
      'sub (a directory) is in the release directory but not listed in SHA256SUMS',
    ]);
  });

  it('refuses a listed file that is a link, even to the right bytes', async () => {
    const outside = join(dir, '..', 'image');
    await writeFile(outside, FILES['solo.img.xz']!);
    await rm(join(dir, 'solo.img.xz'));
    await symlink(outside, join(dir, 'solo.img.xz'));
    expect(await problems()).toEqual(['solo.img.xz is listed in SHA256SUMS but is not a plain file (a link or a directory)']);
  });

  it('without a SHA256SUMS, or with one that names a path outside the directory, refuses before hashing anything', async () => {
    await writeFile(join(dir, 'SHA256SUMS'), `${sha256('x')}  ../escape\n`);
    await expect(checkReleaseDirectory(dir, 'nothing was signed')).rejects.toThrow('"../escape" is not a plain file name in the release directory');
    await rm(join(dir, 'SHA256SUMS'));
    await expect(checkReleaseDirectory(dir, 'nothing was published')).rejects.toThrow(`${dir} has no SHA256SUMS (or it is not a plain file); nothing was published: run assemble first`);
  });
});
