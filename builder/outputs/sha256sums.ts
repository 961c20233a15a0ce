import { UserError } from '../errors.ts';
import type { OutputFile } from './manifest.ts';

/**
 * SHA256SUMS, the list of every output file with its sha256 in `sha256sum` format: the build writes it last (so a
 * present one describes complete files), the release writes one of its own, sign signs it and verify checks against
 * it. This is the one place that knows its name and its format.
 */

export const SUMS_FILE = 'SHA256SUMS';

/** `sha256sum -c` format: two spaces between hash and name. */
export function sha256sums(files: readonly OutputFile[]): string {
  return files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
}

export interface SumsEntry {
  name: string;
  sha256: string;
}

/**
 * A file name from SHA256SUMS becomes a path in a directory and a URL path: only a plain name in that directory
 * is accepted, so a tampered list can never point verification or signing elsewhere.
 */
function checkName(name: string, line: number, source: string): void {
  if (name === '.' || name === '..' || /[/\\\0]/.test(name) || name.trim() !== name || name === '') {
    throw new UserError(`${source} line ${line}: "${name}" is not a plain file name in the release directory`);
  }
}

/** `sha256sum` output: `<64 hex>  <name>` (or ` *<name>` for binary mode), one file per line. */
export function parseSha256Sums(text: string, source: string = SUMS_FILE): SumsEntry[] {
  const entries: SumsEntry[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    if (line.startsWith('\\')) throw new UserError(`${source} line ${index + 1}: escaped file names are not supported`);
    const match = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!match) throw new UserError(`${source} line ${index + 1} is not "<sha256>  <file name>": ${JSON.stringify(line.slice(0, 120))}`);
    const name = match[2]!;
    checkName(name, index + 1, source);
    if (seen.has(name)) throw new UserError(`${source} lists ${name} twice`);
    seen.add(name);
    entries.push({ name, sha256: match[1]!.toLowerCase() });
  });
  if (!entries.length) throw new UserError(`${source} lists no files`);
  return entries;
}
