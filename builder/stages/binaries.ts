import { chmod, chown, copyFile, mkdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { downloadVerified } from '../base/download.ts';
import { UserError } from '../errors.ts';
import { exists } from '../exists.ts';
import { fetchText } from '../fetch-text.ts';
import { sha256File } from '../hash.ts';
import { chrootRunOffline } from '../image/chroot.ts';
import { isAarch64, readElf } from '../image/elf.ts';
import type { MountedImage } from '../image/mount-image.ts';
import type { InstalledBinary } from '../outputs/manifest.ts';
import type { BinaryInput } from '../plan/plan.ts';
import type { StageContext } from '../pipeline/context.ts';
import { inImageTemporary } from '../temporary-names.ts';
import { linkBinary, releaseDir, switchRelease } from '../device/relay-releases.ts';
import { parseReleaseNoteHashes, releaseBody } from './simplexmq-hashes.ts';
import { missingLibraries, parseReportedVersion, versionMatches } from '../update/simplexmq-version.ts';
import { type SimplexmqLock, describeChange, emptyLock, lockedHash, readLock, updatedLock, writeLock } from './simplexmq-lock.ts';

export type { InstalledBinary };
export { missingLibraries, parseReportedVersion, versionMatches };

/** The sha256 a binary must have, where it comes from (recorded in the manifest), and how a mismatch names it. */
interface Expected {
  sha256: string;
  source: InstalledBinary['sha256Source'];
  what: string;
}

function noLine(url: string, binary: BinaryInput): UserError {
  return new UserError(
    `the release notes at ${url} have no SHA2-256(${binary.asset}) line, so ${binary.name} cannot be verified; ` +
      `pin simplexmq.${binary.name.replace('-', '_')}.sha256 in the recipe`,
  );
}

/** `--update-lock`: the notes' sha256 of each locked binary entered into the lock file, and the change said. */
async function lockFromNotes(ctx: StageContext, lock: SimplexmqLock, locked: readonly BinaryInput[], notes: ReadonlyMap<string, string>): Promise<SimplexmqLock> {
  const { version, releaseNotesUrl } = ctx.plan.simplexmq;
  const found = new Map<string, string>();
  for (const binary of locked) {
    const hash = notes.get(binary.asset);
    if (!hash) throw noLine(releaseNotesUrl, binary);
    found.set(binary.asset, hash);
  }
  const update = updatedLock(lock, version, found);
  if (update.changes.length) {
    await writeLock(ctx.options.lockPath, update.lock);
    ctx.warn(`${ctx.options.lockPath} updated from the release notes: ${update.changes.map(describeChange).join('; ')}. Review the change (git diff) before you commit it`);
  } else {
    ctx.log.info(`${ctx.options.lockPath} already holds the release notes' sha256s for simplexmq ${version}`);
  }
  return update.lock;
}

/**
 * The sha256 each binary must have: the recipe's own; or the lock's (stages/simplexmq-lock.ts), with the release
 * notes read as well and a disagreement refused; or the release notes'. `--update-lock` first enters the notes'
 * sha256s for this version into the lock, and says what changed.
 */
async function expectedHashes(ctx: StageContext): Promise<Map<string, Expected>> {
  const { binaries, version, releaseNotesUrl } = ctx.plan.simplexmq;
  const { lockPath, updateLock } = ctx.options;
  const locked = binaries.filter((b) => b.sha256 === 'lock');
  let lock = locked.length ? await readLock(lockPath) : emptyLock();
  const fetchNotes = async () => parseReleaseNoteHashes(releaseBody(await fetchText(releaseNotesUrl, 'simplexmq release notes', ctx.log), releaseNotesUrl));
  const notesNeeded = binaries.some((b) => b.sha256 === 'release-notes') || (locked.length > 0 && (updateLock || locked.some((b) => !lockedHash(lock, version, b.asset))));
  // With every hash in the lock, the notes are a second opinion: unreachable, the lock alone decides.
  const notes = notesNeeded
    ? await fetchNotes()
    : locked.length
      ? await fetchNotes().catch((error: Error) => {
          ctx.log.info(`the release notes could not be read to compare with the lock (${error.message}); the lock alone decides`);
          return undefined;
        })
      : undefined;

  if (updateLock && locked.length) lock = await lockFromNotes(ctx, lock, locked, notes!);

  const hashes = new Map<string, Expected>();
  for (const binary of binaries) {
    if (binary.sha256 === 'release-notes') {
      const hash = notes!.get(binary.asset);
      if (!hash) throw noLine(releaseNotesUrl, binary);
      hashes.set(binary.name, { sha256: hash, source: 'release-notes', what: binary.name });
      continue;
    }
    if (binary.sha256 !== 'lock') {
      hashes.set(binary.name, { sha256: binary.sha256, source: 'recipe', what: binary.name });
      continue;
    }
    const hash = lockedHash(lock, version, binary.asset);
    if (!hash) {
      const fromNotes = notes!.get(binary.asset);
      if (!fromNotes) throw noLine(releaseNotesUrl, binary);
      ctx.warn(
        `simplexmq ${version} is not in ${lockPath}: ${binary.name}'s sha256 comes only from the release notes, which come from the same ` +
          'release as the binary (they show it was not damaged on the way, not that it is the release you reviewed). Lock it with ' +
          '`simplex-pi build --update-lock` and commit the change',
      );
      hashes.set(binary.name, { sha256: fromNotes, source: 'release-notes', what: binary.name });
      continue;
    }
    const noted = notes?.get(binary.asset);
    if (noted && noted !== hash) {
      throw new UserError(
        `the release notes at ${releaseNotesUrl} give sha256 ${noted} for ${binary.asset}, but ${lockPath} locks simplexmq ${version}'s at ${hash}: ` +
          'the asset was replaced after it was locked, or the notes were changed. Nothing was downloaded. Find out which before you build; ' +
          'if the new one is genuine, build with --update-lock and review the change',
      );
    }
    hashes.set(binary.name, { sha256: hash, source: 'lock', what: `${binary.name} (locked in ${basename(lockPath)})` });
  }
  return hashes;
}

/** A verified copy of the binary on the host: downloaded into the cache, or the recipe's local file checked in place. */
async function fetchBinary(ctx: StageContext, binary: BinaryInput, expected: Expected): Promise<string> {
  const { sha256 } = expected;
  if (binary.path) {
    if (!(await exists(binary.path))) throw new UserError(`${binary.name}: ${binary.path} does not exist (recipe simplexmq.${binary.name.replace('-', '_')}.path)`);
    const actual = await sha256File(binary.path);
    if (actual !== sha256) throw new UserError(`sha256 mismatch for ${binary.name}: expected ${sha256}, got ${actual} (${binary.path}); nothing was written`);
    return binary.path;
  }
  return downloadVerified(ctx.cache, { url: binary.url!, what: expected.what, sha256, log: ctx.log, onProgress: ctx.onProgress });
}

async function verifyInImage(ctx: StageContext, mounted: MountedImage, binary: BinaryInput): Promise<string> {
  const version = await chrootRunOffline(mounted.root, [binary.installPath, '-v'], { log: ctx.log, allowFailure: true, timeout: 120_000 });
  const output = `${version.stdout}\n${version.stderr}`;
  const elf = await readElf(join(mounted.root, binary.installPath));
  if (elf?.dynamic) {
    const ldd = await chrootRunOffline(mounted.root, ['ldd', binary.installPath], { log: ctx.log, allowFailure: true });
    const missing = missingLibraries(ldd.stdout);
    if (missing.length) {
      throw new UserError(`${binary.name} needs shared libraries the image does not have: ${missing.join(', ')}; add the Debian packages that provide them`);
    }
  }
  const reported = parseReportedVersion(output);
  if (!reported) {
    throw new UserError(`${binary.name} -v ran in the image but printed no version (exit ${version.exitCode}):\n${output.trim().split('\n').slice(0, 5).join('\n')}`);
  }
  if (!versionMatches(reported, ctx.plan.simplexmq.version)) {
    throw new UserError(`${binary.name} reports version ${reported}, but the recipe asks for simplexmq ${ctx.plan.simplexmq.version}; fix simplexmq.version or the binary's url`);
  }
  return output.trim().split('\n')[0]!;
}

/**
 * binaries: smp-server and xftp-server, each verified before it is installed (sha256, ELF machine aarch64), then
 * run inside the image to check its version and that every shared library resolves. Installed as the card's first
 * release of side-by-side ones (layout.ts RELAY_RELEASES_DIR), which relay updates add to.
 */
export async function binariesStage(ctx: StageContext, { mounted }: { mounted: MountedImage }): Promise<{ binaries: InstalledBinary[] }> {
  const hashes = await expectedHashes(ctx);
  const installed: InstalledBinary[] = [];
  for (const binary of ctx.plan.simplexmq.binaries) {
    const expected = hashes.get(binary.name)!;
    const { sha256 } = expected;
    ctx.status(`${binary.name}: fetching and verifying`);
    const file = await fetchBinary(ctx, binary, expected);
    const elf = await readElf(file);
    if (!elf) throw new UserError(`${binary.name} (${binary.url ?? binary.path}) is not an ELF executable; is the URL right?`);
    if (!isAarch64(elf)) {
      throw new UserError(`${binary.name} is built for ${elf.machineName} (${elf.class}-bit), not aarch64; use the *-aarch64 release asset`);
    }
    // The file goes into the release's own directory; binary.installPath is a link to it through the current
    // release (device/relay-releases.ts), which `simplex-pi update` on the Pi switches to the next release.
    const target = join(releaseDir(ctx.plan.simplexmq.version, mounted.root), binary.name);
    await mkdir(dirname(target), { recursive: true });
    const temporary = inImageTemporary(target);
    await copyFile(file, temporary);
    await chown(temporary, 0, 0);
    await chmod(temporary, 0o755);
    await rename(temporary, target);
    await switchRelease(ctx.plan.simplexmq.version, mounted.root);
    await linkBinary(binary.name, mounted.root);
    ctx.status(`${binary.name}: running -v in the image`);
    const reportedVersion = await verifyInImage(ctx, mounted, binary);
    installed.push({
      name: binary.name,
      source: binary.url ?? binary.path!,
      sha256,
      sha256Source: expected.source,
      reportedVersion,
      installPath: binary.installPath,
    });
  }
  return { binaries: installed };
}
