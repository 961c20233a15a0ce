import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { writeEntries } from '../image/install.ts';
import { type ImageEntry, listing, renderImageFiles } from './render.ts';

const MARKER = 'files.txt';

/**
 * `simplex-pi render`: the files the configure stage would write, under DIR/rootfs, with DIR/plan.json and
 * DIR/files.txt (owner and mode of each, which plain files cannot show). No root needed. The directory is
 * replaced whole, and only if it is empty or an earlier render.
 */
export async function renderToDirectory(plan: BuildPlan, outDir: string): Promise<ImageEntry[]> {
  const existing = await readdir(outDir).catch(() => undefined);
  if (existing && existing.length && !existing.includes(MARKER)) {
    throw new UserError(`${outDir} exists and is not an earlier render (no ${MARKER}); choose another --out`);
  }
  const entries = await renderImageFiles(plan);
  const temporary = `${outDir}.partial-${process.pid}`;
  await rm(temporary, { recursive: true, force: true });
  try {
    await mkdir(dirname(outDir), { recursive: true });
    await writeEntries(join(temporary, 'rootfs'), entries);
    await writeFile(join(temporary, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
    await writeFile(join(temporary, MARKER), listing(entries));
    await rm(outDir, { recursive: true, force: true });
    await rename(temporary, outDir);
  } finally {
    await rm(temporary, { recursive: true, force: true });
  }
  return entries;
}
