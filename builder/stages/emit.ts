import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.ts';
import { sha256File } from '../hash.ts';
import type { BaseImage } from '../base/types.ts';
import { type Manifest, type OutputFile, sha256sums } from '../release/manifest.ts';
import type { InstalledBinary } from './binaries.ts';
import type { StageContext } from './context.ts';
import type { SealResult } from './seal.ts';
import type { WorkImage } from './prepare.ts';

export interface EmitInput {
  work: WorkImage;
  base: BaseImage;
  binaries: InstalledBinary[];
  seal: SealResult;
  recipe: { path: string; sha256: string };
  tool: { version: string; commit?: string };
  stageSeconds: Record<string, number>;
}

export interface EmitResult {
  outDir: string;
  files: OutputFile[];
  manifest: Manifest;
}

const TEMP = '.partial';

async function describe(path: string, name: string): Promise<OutputFile> {
  return { name, size: (await stat(path)).size, sha256: await sha256File(path) };
}

/** Move (same filesystem) or sparse-copy (another one) the finished image out of the cache. */
async function moveImage(from: string, to: string, ctx: StageContext): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await run('cp', ['--sparse=always', from, to], { log: ctx.log, what: `copy the image to ${to}` });
    await rm(from, { force: true });
  }
}

/**
 * emit: `<name>.img`, `<name>.img.xz`, `manifest.json` and `SHA256SUMS` in the output directory. Each is written
 * under a temporary name and renamed when complete. The previous build's SHA256SUMS is removed first and the new
 * one written last, so a SHA256SUMS that is present always describes complete files of one build.
 */
export async function emitStage(ctx: StageContext, input: EmitInput): Promise<EmitResult> {
  const { outDir } = ctx.options;
  const name = ctx.plan.name;
  await mkdir(outDir, { recursive: true });
  const sums = join(outDir, 'SHA256SUMS');
  await rm(sums, { force: true });
  const temporaries: string[] = [];
  const temp = (file: string) => {
    const path = join(outDir, `.${file}${TEMP}`);
    temporaries.push(path);
    return path;
  };
  try {
    const imgName = `${name}.img`;
    const imgTemp = temp(imgName);
    await moveImage(input.work.path, imgTemp, ctx);
    const files: OutputFile[] = [];
    ctx.status('hashing the image');
    files.push(await describe(imgTemp, imgName));
    let xzTemp: string | undefined;
    const xzName = `${imgName}.xz`;
    if (ctx.options.compress === 'xz') {
      // xz writes `<input>.xz` itself (keeping the input): no pipe through this process.
      xzTemp = `${imgTemp}.xz`;
      temporaries.push(xzTemp);
      ctx.status(`compressing with xz -${ctx.options.xzLevel} on all cores`);
      await run('xz', ['--keep', '--force', '--threads=0', `-${ctx.options.xzLevel}`, imgTemp], { log: ctx.log, what: 'compress the image' });
      files.push(await describe(xzTemp, xzName));
    }
    const manifest: Manifest = {
      manifestVersion: 1,
      tool: { name: 'simplex-pi', ...input.tool },
      builtAt: new Date().toISOString(),
      recipe: { name, ...input.recipe },
      plan: ctx.plan,
      base: input.base,
      packages: input.seal.packages,
      simplexmq: { version: ctx.plan.simplexmq.version, binaries: input.binaries },
      outputs: files,
      stageSeconds: input.stageSeconds,
    };
    const manifestTemp = temp('manifest.json');
    await writeFile(manifestTemp, `${JSON.stringify(manifest, null, 2)}\n`);
    files.push(await describe(manifestTemp, 'manifest.json'));
    const sumsTemp = temp('SHA256SUMS');
    await writeFile(sumsTemp, sha256sums(files));

    await rename(imgTemp, join(outDir, imgName));
    if (xzTemp) await rename(xzTemp, join(outDir, xzName));
    else await rm(join(outDir, xzName), { force: true });
    await rename(manifestTemp, join(outDir, 'manifest.json'));
    await rename(sumsTemp, sums);
    return { outDir, files, manifest };
  } finally {
    for (const path of temporaries) await rm(path, { force: true });
  }
}

