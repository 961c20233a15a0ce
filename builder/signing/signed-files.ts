import { SUMS_FILE } from '../outputs/sha256sums.ts';
import { MANIFEST_FILE } from '../outputs/manifest.ts';
import { isUpdateBundleName } from '../update/format.ts';

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
  // The Pi checks a relay update bundle's own signature before it reads it (update/open-bundle.ts).
  if (isUpdateBundleName(name)) return true;
  return name.endsWith('.json') && name !== MANIFEST_FILE;
}

/** The signed files among `names`, SHA256SUMS first, the rest sorted, so output and messages are stable. */
export function signedFiles(names: readonly string[]): string[] {
  const chosen = [...new Set(names.filter(isSignedFile))].sort();
  return chosen.includes(SUMS_FILE) ? [SUMS_FILE, ...chosen.filter((n) => n !== SUMS_FILE)] : chosen;
}
