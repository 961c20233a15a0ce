import { stat } from 'node:fs/promises';

/**
 * Whether something is at `path` (following links). Only "not there" answers false: a missing file or a missing
 * directory on the way (ENOENT, ENOTDIR). Any other error (permission denied, I/O error) is thrown, because it
 * does not say whether the file exists, and a guess would make a caller say "does not exist" of a file that does,
 * or write over one.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}
