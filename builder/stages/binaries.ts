import { chmod, chown, copyFile, mkdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { downloadVerified } from '../base/download.ts';
import { UserError } from '../errors.ts';
import { exists } from '../exists.ts';
import { fetchText } from '../fetch-text.ts';
import { sha256File } from '../hash.ts';
import { chrootRun } from '../image/chroot.ts';
import { EM_AARCH64, readElf } from '../image/elf.ts';
import type { MountedImage } from '../image/mount-image.ts';
import type { InstalledBinary } from '../outputs/manifest.ts';
import type { BinaryInput } from '../plan/plan.ts';
import type { StageContext } from '../pipeline/context.ts';
import { inImageTemporary } from '../temporary-names.ts';
import { parseReleaseNoteHashes, releaseBody } from './simplexmq-hashes.ts';

export type { InstalledBinary };

/** The sha256 each binary must have: from the recipe, or read once from the release notes. */
async function expectedHashes(ctx: StageContext): Promise<Map<string, string>> {
  const binaries = ctx.plan.simplexmq.binaries;
  const fromNotes = binaries.some((b) => b.sha256 === 'release-notes');
  const notes = fromNotes
    ? parseReleaseNoteHashes(releaseBody(await fetchText(ctx.plan.simplexmq.releaseNotesUrl, 'simplexmq release notes', ctx.log), ctx.plan.simplexmq.releaseNotesUrl))
    : new Map<string, string>();
  const hashes = new Map<string, string>();
  for (const binary of binaries) {
    if (binary.sha256 !== 'release-notes') {
      hashes.set(binary.name, binary.sha256);
      continue;
    }
    const hash = notes.get(binary.asset);
    if (!hash) {
      throw new UserError(
        `the release notes at ${ctx.plan.simplexmq.releaseNotesUrl} have no SHA2-256(${binary.asset}) line, so ${binary.name} cannot be verified; ` +
          `pin simplexmq.${binary.name.replace('-', '_')}.sha256 in the recipe`,
      );
    }
    hashes.set(binary.name, hash);
  }
  return hashes;
}

/** A verified copy of the binary on the host: downloaded into the cache, or the recipe's local file checked in place. */
async function fetchBinary(ctx: StageContext, binary: BinaryInput, sha256: string): Promise<string> {
  if (binary.path) {
    if (!(await exists(binary.path))) throw new UserError(`${binary.name}: ${binary.path} does not exist (recipe simplexmq.${binary.name.replace('-', '_')}.path)`);
    const actual = await sha256File(binary.path);
    if (actual !== sha256) throw new UserError(`sha256 mismatch for ${binary.name}: expected ${sha256}, got ${actual} (${binary.path}); nothing was written`);
    return binary.path;
  }
  return downloadVerified(ctx.cache, { url: binary.url!, what: binary.name, sha256, log: ctx.log, onProgress: ctx.onProgress });
}

/** The version in `SMP server v6.5.2.0 / 1a2b3c4`; the recipe's 6.5.2 matches 6.5.2 and 6.5.2.x. */
export function parseReportedVersion(output: string): string | undefined {
  return /\bv(\d+\.\d+\.\d+(?:\.\d+)?(?:-[0-9A-Za-z.]+)?)/.exec(output)?.[1];
}

/**
 * Whether the version a binary reports is the recipe's. Binaries report their cabal version: 6.5.2 reports
 * 6.5.2.0. A pre-release tag has no fixed cabal number (v6.5.0-beta.1 reports 6.5.0.1, v7.0.0-beta.2 reports
 * 7.0.0.3), so for one any X.Y.Z.n of its X.Y.Z matches; the binary is pinned by its sha256 in any case.
 */
export function versionMatches(reported: string, wanted: string): boolean {
  if (reported === wanted || reported.startsWith(`${wanted}.`)) return true;
  const preRelease = /^(\d+\.\d+\.\d+)-[0-9A-Za-z.]+$/.exec(wanted);
  return preRelease !== null && new RegExp(`^${preRelease[1]!.replaceAll('.', '\\.')}\\.\\d+$`).test(reported);
}

/** `ldd` lines for libraries the dynamic loader cannot find. */
export function missingLibraries(lddOutput: string): string[] {
  return lddOutput
    .split('\n')
    .filter((line) => /=>\s*not found/.test(line))
    .map((line) => line.trim().split(/\s+/)[0]!);
}

async function verifyInImage(ctx: StageContext, mounted: MountedImage, binary: BinaryInput): Promise<string> {
  const version = await chrootRun(mounted.root, [binary.installPath, '-v'], { log: ctx.log, allowFailure: true, timeout: 120_000 });
  const output = `${version.stdout}\n${version.stderr}`;
  const elf = await readElf(join(mounted.root, binary.installPath));
  if (elf?.dynamic) {
    const ldd = await chrootRun(mounted.root, ['ldd', binary.installPath], { log: ctx.log, allowFailure: true });
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
 * run inside the image to check its version and that every shared library resolves.
 */
export async function binariesStage(ctx: StageContext, { mounted }: { mounted: MountedImage }): Promise<{ binaries: InstalledBinary[] }> {
  const hashes = await expectedHashes(ctx);
  const installed: InstalledBinary[] = [];
  for (const binary of ctx.plan.simplexmq.binaries) {
    const sha256 = hashes.get(binary.name)!;
    ctx.status(`${binary.name}: fetching and verifying`);
    const file = await fetchBinary(ctx, binary, sha256);
    const elf = await readElf(file);
    if (!elf) throw new UserError(`${binary.name} (${binary.url ?? binary.path}) is not an ELF executable; is the URL right?`);
    if (elf.machine !== EM_AARCH64 || elf.class !== 64) {
      throw new UserError(`${binary.name} is built for ${elf.machineName} (${elf.class}-bit), not aarch64; use the *-aarch64 release asset`);
    }
    const target = join(mounted.root, binary.installPath);
    await mkdir(dirname(target), { recursive: true });
    const temporary = inImageTemporary(target);
    await copyFile(file, temporary);
    await chown(temporary, 0, 0);
    await chmod(temporary, 0o755);
    await rename(temporary, target);
    ctx.status(`${binary.name}: running -v in the image`);
    const reportedVersion = await verifyInImage(ctx, mounted, binary);
    installed.push({
      name: binary.name,
      source: binary.url ?? binary.path!,
      sha256,
      sha256Source: binary.sha256 === 'release-notes' ? 'release-notes' : 'recipe',
      reportedVersion,
      installPath: binary.installPath,
    });
  }
  return { binaries: installed };
}
