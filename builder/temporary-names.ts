import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * The names files have while they are being written, so a reader never takes a half-written file for a whole
 * one: the conventions in one place (signing/signed-files.ts must know them to skip them in a release).
 */

/** A hidden, unique sibling of `path`: `.NAME.<random>.partial`. */
export function hiddenTemporary(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
}

/** Inside an image being built: `NAME.simplex-pi-new`, renamed over NAME when complete. */
export function inImageTemporary(path: string): string {
  return `${path}.simplex-pi-new`;
}
