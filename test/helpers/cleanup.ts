// Loaded by vitest before every test file (vitest.config.ts setupFiles): after the file's tests, remove the
// scratch directories it made, unless something is still mounted below one (then it is left, and said).
import { readFile, rm } from 'node:fs/promises';
import { afterAll } from 'vitest';
import { keepScratch, scratchDirs } from './env.ts';

afterAll(async () => {
  if (keepScratch()) return;
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((line) => line.split(' ')[4] ?? '');
  for (const dir of scratchDirs.splice(0)) {
    if (mounts.some((m) => m === dir || m.startsWith(`${dir}/`))) {
      console.warn(`cleanup: ${dir} still has something mounted below it; left in place`);
      continue;
    }
    await rm(dir, { recursive: true, force: true });
  }
});
