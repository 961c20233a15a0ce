import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../exec.ts';

export interface ToolVersion {
  version: string;
  /** The checkout's commit, when simplex-pi runs from a git checkout. */
  commit?: string;
}

/** The simplex-pi checkout (or installed package) this runs from. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** simplex-pi's version (package.json) and commit, for `--version`, the manifest and inspect-base reports. */
export async function toolVersion(): Promise<ToolVersion> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const commit = await run('git', ['-C', REPO_ROOT, 'rev-parse', '--short=12', 'HEAD'], { allowFailure: true }).catch(() => undefined);
  return { version: pkg.version, commit: commit?.exitCode === 0 ? commit.stdout.trim() : undefined };
}
