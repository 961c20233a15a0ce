import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { sha256File } from '../hash.ts';
import { SUMS_FILE, parseSha256Sums } from '../outputs/sha256sums.ts';
import { SIGNATURE_SUFFIX, isSignedFile } from '../signing/signed-files.ts';

/**
 * A release directory before it is signed or published: it must hold exactly the files its SHA256SUMS lists, each
 * with the listed hash, plus SHA256SUMS itself and signatures of the files that are signed. In the release
 * workflow the files were made by another job (the build job, which runs recipes and third-party downloads) and
 * reached this one as an artifact, so this is where a file that changed or appeared on the way is caught. A file
 * that is not listed would otherwise be published next to the release without any signature vouching for it.
 *
 * What this cannot tell: whether the build job itself was honest. It wrote SHA256SUMS; the signature says "these
 * are the files the build produced", no more.
 */

export interface ReleaseDirectoryCheck {
  /** The files SHA256SUMS lists, all present with the listed sha256, in its order. */
  listed: string[];
  /** Signatures already present (of SHA256SUMS or of a listed file that is signed); `sign` replaces them. */
  signatures: string[];
}

/** Whether `name` may sit in a release directory as a signature: of SHA256SUMS, or of a listed file that is signed. */
function isSignatureOf(name: string, listed: ReadonlySet<string>): boolean {
  if (!name.endsWith(SIGNATURE_SUFFIX)) return false;
  const of = name.slice(0, -SIGNATURE_SUFFIX.length);
  return of === SUMS_FILE || (listed.has(of) && isSignedFile(of));
}

/**
 * Check `releaseDir` against its SHA256SUMS. Throws a UserError naming every problem (a listed file missing or
 * with another sha256, a file present but not listed, anything that is not a plain file) and ending with
 * `consequence` ("nothing was signed"), or returns what it checked.
 */
export async function checkReleaseDirectory(releaseDir: string, consequence: string): Promise<ReleaseDirectoryCheck> {
  const sumsPath = join(releaseDir, SUMS_FILE);
  const sumsInfo = await lstat(sumsPath).catch(() => undefined);
  if (!sumsInfo?.isFile()) throw new UserError(`${releaseDir} has no ${SUMS_FILE} (or it is not a plain file); ${consequence}: run assemble first`);
  const entries = parseSha256Sums(await readFile(sumsPath, 'utf8'), sumsPath);
  const listed = new Set(entries.map((e) => e.name));
  const problems: string[] = [];

  for (const entry of entries) {
    const path = join(releaseDir, entry.name);
    const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!info) {
      problems.push(`${entry.name} is listed in ${SUMS_FILE} but missing`);
    } else if (!info.isFile()) {
      problems.push(`${entry.name} is listed in ${SUMS_FILE} but is not a plain file (a link or a directory)`);
    } else {
      const actual = await sha256File(path);
      if (actual !== entry.sha256) problems.push(`${entry.name} has sha256 ${actual}, but ${SUMS_FILE} says ${entry.sha256}`);
    }
  }

  const signatures: string[] = [];
  const present = (await readdir(releaseDir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of present) {
    if (entry.name === SUMS_FILE || listed.has(entry.name)) continue; // checked above
    if (entry.isFile() && isSignatureOf(entry.name, listed)) {
      signatures.push(entry.name);
      continue;
    }
    const kind = entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : entry.isSymbolicLink() ? 'symbolic link' : 'special file';
    problems.push(`${entry.name} (a ${kind}) is in the release directory but not listed in ${SUMS_FILE}`);
  }

  if (problems.length) {
    throw new UserError(
      `${releaseDir} does not match its ${SUMS_FILE}; ${consequence}:\n` +
        problems.map((p) => `  - ${p}`).join('\n') +
        `\nA release directory holds exactly the files its ${SUMS_FILE} lists, and their signatures. In the release ` +
        'workflow this means the files changed between the build job and this one: do not publish them, run the ' +
        'release again and find out what changed them. On your own machine: run assemble again.',
    );
  }
  return { listed: entries.map((e) => e.name), signatures };
}
