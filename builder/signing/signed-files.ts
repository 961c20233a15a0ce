import { UserError } from '../errors.ts';

export const SUMS_FILE = 'SHA256SUMS';
export const SIGNATURE_SUFFIX = '.minisig';

/**
 * Which files of an output directory carry a minisign signature: SHA256SUMS (which vouches for every file it
 * lists), and the Raspberry Pi Imager repository files, because Imager reads them before any checksum is checked.
 * manifest.json is listed in SHA256SUMS and so already covered.
 */
export function isSignedFile(name: string): boolean {
  // Hidden files are other tools' temporaries (emit writes `.<name>.partial`), never release files.
  if (name.startsWith('.')) return false;
  if (name === SUMS_FILE) return true;
  if (name.endsWith('.rpi-imager-manifest')) return true;
  return name.endsWith('.json') && name !== 'manifest.json';
}

/** The signed files among `names`, SHA256SUMS first, the rest sorted, so output and messages are stable. */
export function signedFiles(names: readonly string[]): string[] {
  const chosen = [...new Set(names.filter(isSignedFile))].sort();
  return chosen.includes(SUMS_FILE) ? [SUMS_FILE, ...chosen.filter((n) => n !== SUMS_FILE)] : chosen;
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
