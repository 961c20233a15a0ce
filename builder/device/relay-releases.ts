import { lstat, mkdir, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { BINARY_DIR, type BinaryName, RELAY_RELEASES_DIR, RELAY_RELEASE_CURRENT } from '../plan/layout.ts';
import { syncDir } from './files.ts';

/**
 * The simplexmq releases on a card, side by side (layout.ts RELAY_RELEASES_DIR): the build installs the image's
 * release this way, `simplex-pi update` adds the next beside it and switches. Every function takes the root the card
 * is at: `/` on the Pi, the mounted image during the build. Links are relative, so the same link resolves in both.
 */

/** The directory of one release on the card (`…/simplexmq/6.5.2`). */
export function releaseDir(version: string, root = '/'): string {
  return join(root, RELAY_RELEASES_DIR, version);
}

/** The version directory names an update may create: a simplexmq version, nothing that walks out of the folder. */
export function isReleaseName(name: string): boolean {
  return /^\d+\.\d+\.\d+(\.\d+)?(-[0-9A-Za-z.]+)?$/.test(name);
}

/** Replace (or make) a symbolic link in one step: a new link beside it, renamed over it, the directory flushed. */
async function replaceLink(path: string, target: string): Promise<void> {
  const temporary = `${path}.new`;
  await rm(temporary, { force: true });
  await symlink(target, temporary);
  await rename(temporary, path);
  await syncDir(dirname(path));
}

/** The release the relays run: what RELAY_RELEASE_CURRENT points to, or undefined on a card from before side-by-side releases. */
export async function currentRelease(root = '/'): Promise<string | undefined> {
  const target = await readlink(join(root, RELAY_RELEASE_CURRENT)).catch(() => undefined);
  return target && isReleaseName(target) ? target : undefined;
}

/**
 * Make `version` the release the relays run, all binaries at once: RELAY_RELEASE_CURRENT replaced in one rename.
 * A relay already running keeps the program it started with until it is restarted.
 */
export async function switchRelease(version: string, root = '/'): Promise<void> {
  if (!isReleaseName(version)) throw new Error(`not a simplexmq release name: ${version}`);
  await replaceLink(join(root, RELAY_RELEASE_CURRENT), version);
}

/** BINARY_DIR/<name> → the current release's <name>: what the units and `init` run. Made once, by the build. */
export async function linkBinary(name: BinaryName, root = '/'): Promise<void> {
  const link = join(root, BINARY_DIR, name);
  await mkdir(dirname(link), { recursive: true });
  await replaceLink(link, relative(BINARY_DIR, join(RELAY_RELEASE_CURRENT, name)));
}

/** Every release directory on the card, by name. */
export async function releasesOnCard(root = '/'): Promise<string[]> {
  const entries = await readdir(join(root, RELAY_RELEASES_DIR), { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && isReleaseName(e.name)).map((e) => e.name).sort();
}

/** Remove every release but `keep` (the current one and the one to roll back to): a card is small. */
export async function pruneReleases(keep: readonly string[], root = '/'): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await releasesOnCard(root)) {
    if (keep.includes(name)) continue;
    await rm(releaseDir(name, root), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Whether BINARY_DIR/<name> is the link through the current release (a card built before releases sat side by side has a file there). */
export async function binaryIsLinked(name: BinaryName, root = '/'): Promise<boolean> {
  const path = join(root, BINARY_DIR, name);
  const info = await lstat(path).catch(() => undefined);
  return info?.isSymbolicLink() === true && (await readlink(path)) === relative(BINARY_DIR, join(RELAY_RELEASE_CURRENT, name));
}
