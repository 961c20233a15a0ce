import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../exec.ts';
import { sha256File } from '../hash.ts';
import type { InitFormatChoice } from '../base/init-format.ts';
import type { BaseImage } from '../base/types.ts';
import { imagerJsonName, imagerJsonText, imagerManifestName, imagerOsEntry, imagerRepository, publishedUrl, releaseDate } from '../outputs/imager-repository.ts';
import { MANIFEST_FILE, type Manifest, type OutputFile } from '../outputs/manifest.ts';
import { SUMS_FILE, sha256sums } from '../outputs/sha256sums.ts';
import type { InstalledBinary } from './binaries.ts';
import type { StageContext } from '../pipeline/context.ts';
import type { SealResult } from './seal.ts';
import type { WorkImage } from './prepare.ts';

export interface EmitInput {
  work: WorkImage;
  base: BaseImage;
  /** Raspberry Pi Imager's init_format for the image, and why (decided in configure). */
  initFormat: InitFormatChoice;
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
 * Raspberry Pi Imager's two files for this image: `<name>.rpi-imager.json`, a repository JSON whose entry points at
 * the published download (`--publish-url`) or else at the local file, and `<name>.rpi-imager-manifest`, the same
 * pointing at the local file, which Imager opens on a double-click. Imager takes local files as file:// URLs (as
 * its own create_local_json.py writes them); a bare path would be fetched as a URL and fail.
 */
async function writeImagerFiles(
  ctx: StageContext,
  input: { base: BaseImage; initFormat: InitFormatChoice; image: OutputFile; download: OutputFile; builtAt: Date },
  temp: (file: string) => string,
): Promise<Array<{ name: string; path: string }>> {
  const { outDir, publishUrl } = ctx.options;
  const entry = (url: string) =>
    imagerOsEntry({
      name: ctx.plan.name,
      description: ctx.plan.description,
      baseDescription: input.base.description,
      image: input.image,
      download: input.download,
      url,
      releaseDate: releaseDate(input.builtAt),
      initFormat: input.initFormat.format,
      models: ctx.plan.models,
    });
  const localUrl = pathToFileURL(join(outDir, input.download.name)).href;
  const written: Array<{ name: string; path: string }> = [];
  for (const [name, url] of [
    [imagerJsonName(ctx.plan.name), publishUrl ? publishedUrl(publishUrl, input.download.name) : localUrl],
    [imagerManifestName(ctx.plan.name), localUrl],
  ] as const) {
    const path = temp(name);
    await writeFile(path, imagerJsonText(imagerRepository([entry(url)], ctx.plan.models)));
    written.push({ name, path });
  }
  return written;
}

/**
 * emit: `<name>.img`, `<name>.img.xz`, the two Raspberry Pi Imager files (which hold the image's sizes and
 * hashes), `manifest.json` (which lists all of them) and `SHA256SUMS` (all of them, and the manifest) in the
 * output directory. Each is written under a temporary name and renamed when complete. The previous build's
 * SHA256SUMS is removed first and the new one written last, so a SHA256SUMS that is present always describes
 * complete files of one build.
 */
export async function emitStage(ctx: StageContext, input: EmitInput): Promise<{ outputs: EmitResult }> {
  const { outDir } = ctx.options;
  const name = ctx.plan.name;
  await mkdir(outDir, { recursive: true });
  const sums = join(outDir, SUMS_FILE);
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
    const builtAt = new Date();
    const image = files[0]!;
    // Imager downloads the .xz when there is one, else the image itself (it writes an uncompressed .img as it is).
    const download = files.find((f) => f.name === xzName) ?? image;
    const imagerFiles = await writeImagerFiles(ctx, { base: input.base, initFormat: input.initFormat, image, download, builtAt }, temp);
    for (const file of imagerFiles) files.push(await describe(file.path, file.name));
    const manifest: Manifest = {
      manifestVersion: 1,
      tool: { name: 'simplex-pi', ...input.tool },
      builtAt: builtAt.toISOString(),
      recipe: { name, ...input.recipe },
      plan: ctx.plan,
      // What the image was published with, beside what Imager's list said (listedInitFormat).
      base: { ...input.base, initFormat: input.initFormat.format, initFormatReason: input.initFormat.reason },
      packages: input.seal.packages,
      simplexmq: { version: ctx.plan.simplexmq.version, binaries: input.binaries },
      outputs: files,
      stageSeconds: input.stageSeconds,
    };
    const manifestTemp = temp(MANIFEST_FILE);
    await writeFile(manifestTemp, `${JSON.stringify(manifest, null, 2)}\n`);
    files.push(await describe(manifestTemp, MANIFEST_FILE));
    const sumsTemp = temp(SUMS_FILE);
    await writeFile(sumsTemp, sha256sums(files));

    await rename(imgTemp, join(outDir, imgName));
    if (xzTemp) await rename(xzTemp, join(outDir, xzName));
    else await rm(join(outDir, xzName), { force: true });
    for (const file of imagerFiles) await rename(file.path, join(outDir, file.name));
    await rename(manifestTemp, join(outDir, MANIFEST_FILE));
    await rename(sumsTemp, sums);
    return { outputs: { outDir, files, manifest } };
  } finally {
    for (const path of temporaries) await rm(path, { force: true });
  }
}

