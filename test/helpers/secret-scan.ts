import { lstat, open, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Looking for keys in the clear where they must not be, by their bytes: independent of file names, formats or how
 * the program under test chose to lay things out.
 */

/** Which of the secrets (by index) stand anywhere in the file's bytes. */
export async function bytesFound(file: string, secrets: readonly Buffer[]): Promise<number[]> {
  const handle = await open(file, 'r');
  try {
    const found = new Set<number>();
    const longest = Math.max(...secrets.map((s) => s.length));
    const chunk = Buffer.alloc(8 * 1024 * 1024);
    let carry = Buffer.alloc(0);
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (!bytesRead) break;
      // Overlap the chunks by the longest secret, so one split between two reads is still found.
      const window = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
      secrets.forEach((secret, i) => {
        if (window.includes(secret)) found.add(i);
      });
      carry = window.subarray(Math.max(0, window.length - longest));
    }
    return [...found].sort((a, b) => a - b);
  } finally {
    await handle.close();
  }
}

/**
 * Every regular file under the temporary directories (os.tmpdir(), /tmp, /var/tmp, /dev/shm) that holds one of
 * the secrets, as `path: #index`; `exclude` are trees left out (the test's own cards and caches). With `since`
 * (ms), only files whose inode changed since then: what the program under test could have written or touched.
 */
export async function secretsInTemporaryDirectories(secrets: readonly Buffer[], exclude: readonly string[], since = 0): Promise<string[]> {
  const skipped = new Set(exclude.map((e) => resolve(e)));
  const roots = [...new Set([tmpdir(), '/tmp', '/var/tmp', '/dev/shm'].map((r) => resolve(r)))];
  const hits: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    if (skipped.has(dir)) return;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(dir, name);
      if (skipped.has(path)) continue;
      const info = await lstat(path).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) await walk(path);
      else if (info.isFile() && info.size > 0 && info.ctimeMs >= since) {
        const found = await bytesFound(path, secrets).catch(() => []);
        for (const i of found) hits.push(`${path}: #${i}`);
      }
    }
  };
  for (const root of roots) await walk(root);
  return hits;
}
