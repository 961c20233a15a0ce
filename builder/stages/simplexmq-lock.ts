import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { parseJsonAs } from '../parse-json.ts';
import { REPO_ROOT } from '../pipeline/tool-version.ts';
import { hiddenTemporary } from '../temporary-names.ts';

/**
 * simplexmq.lock.json: the sha256 of each simplexmq release asset, kept in the repository and reviewed in a pull
 * request like package-lock.json. A binary with `sha256: lock` (the default) must have the lock's hash: the release
 * notes come from the same GitHub release as the binary, so on their own they prove only that the download was not
 * damaged on the way, not that the release is the one that was reviewed (security review M7). The notes are still
 * read, and a release whose notes no longer agree with the lock is refused: an asset replaced after it was locked.
 */

/** The lock that ships with simplex-pi, at the root of its repository (and of its npm package). */
export const DEFAULT_LOCK = join(REPO_ROOT, 'simplexmq.lock.json');

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be a lower-case sha256 (64 hexadecimal characters)' });

const lockSchema = z.strictObject({
  lockfileVersion: z.literal(1, { error: 'must be 1 (this simplex-pi reads lock files of version 1)' }),
  about: z.string().optional(),
  /** Release version (as in the recipe's simplexmq.version) -> asset name -> sha256. */
  releases: z.record(z.string(), z.record(z.string(), sha256)),
});

export type SimplexmqLock = z.output<typeof lockSchema>;

const ABOUT =
  'The sha256 of each simplexmq release asset a recipe downloads with `sha256: lock` (the default). Review changes like ' +
  'package-lock.json: `simplex-pi build --update-lock` takes them from the release notes; read the diff before committing.';

export function emptyLock(): SimplexmqLock {
  return { lockfileVersion: 1, about: ABOUT, releases: {} };
}

/** The lock at `path`; none there is an empty lock (every release then falls back to its notes, with a warning). */
export async function readLock(path: string): Promise<SimplexmqLock> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new UserError(`cannot read the simplexmq lock file ${path}: ${error.message}`);
  });
  if (text === undefined) return emptyLock();
  return parseJsonAs(lockSchema, text, `the simplexmq lock file ${path}`, {
    notJson: 'is not JSON; restore it from git, or delete it and run `simplex-pi build --update-lock`',
    invalid: 'is not a simplexmq lock file',
  });
}

export function lockedHash(lock: SimplexmqLock, version: string, asset: string): string | undefined {
  return lock.releases[version]?.[asset];
}

export interface LockChange {
  version: string;
  asset: string;
  from: string | undefined;
  to: string;
}

/** The lock with `hashes` (asset -> sha256, from the release notes) entered for `version`, and what changed. */
export function updatedLock(lock: SimplexmqLock, version: string, hashes: ReadonlyMap<string, string>): { lock: SimplexmqLock; changes: LockChange[] } {
  const release = { ...(lock.releases[version] ?? {}) };
  const changes: LockChange[] = [];
  for (const [asset, hash] of hashes) {
    if (release[asset] === hash) continue;
    changes.push({ version, asset, from: release[asset], to: hash });
    release[asset] = hash;
  }
  return { lock: { ...lock, releases: { ...lock.releases, [version]: release } }, changes };
}

/** Versions and assets in a stable order, so that a refresh shows in `git diff` as the lines that changed. */
export function serializeLock(lock: SimplexmqLock): string {
  const sorted = (record: Record<string, string>) => Object.fromEntries(Object.keys(record).sort().map((k) => [k, record[k]!]));
  const releases = Object.fromEntries(
    Object.keys(lock.releases)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .map((version) => [version, sorted(lock.releases[version]!)]),
  );
  return `${JSON.stringify({ lockfileVersion: lock.lockfileVersion, about: lock.about ?? ABOUT, releases }, null, 2)}\n`;
}

/** Write the lock whole or not at all. */
export async function writeLock(path: string, lock: SimplexmqLock): Promise<void> {
  const temporary = hiddenTemporary(path);
  try {
    await writeFile(temporary, serializeLock(lock));
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}

export function describeChange(change: LockChange): string {
  return `${change.version} ${change.asset}: ${change.from ? `${change.from} -> ` : 'added '}${change.to}`;
}
