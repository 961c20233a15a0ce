import { appendFile, readFile } from 'node:fs/promises';

/**
 * The Pi's own logs of what it did (exports of secrets, backups): one JSON object per line, root-only, appended;
 * `status` shows the last line.
 */

export async function appendJsonLine(path: string, record: object): Promise<void> {
  await appendFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

/** The last record; undefined if there is none (or no file). Throws EACCES for a user who may not know. */
export async function lastJsonLine<T>(path: string): Promise<T | undefined> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const last = text.trim().split('\n').filter(Boolean).at(-1);
  return last ? (JSON.parse(last) as T) : undefined;
}
