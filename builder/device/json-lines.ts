import { appendFile, readFile } from 'node:fs/promises';

/**
 * The Pi's own logs of what it did (exports of secrets, backups): one JSON object per line, root-only, appended;
 * `status` shows the last line.
 */

export async function appendJsonLine(path: string, record: object): Promise<void> {
  await appendFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

/** The last `count` records, oldest first; none if there is no file. Throws EACCES for a user who may not know. */
export async function lastJsonLines<T>(path: string, count: number): Promise<T[]> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return text.trim().split('\n').filter(Boolean).slice(-count).map((line) => JSON.parse(line) as T);
}

/** The last record; undefined if there is none (or no file). */
export async function lastJsonLine<T>(path: string): Promise<T | undefined> {
  return (await lastJsonLines<T>(path, 1))[0];
}
