import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../exec.ts';
import { formatBytes } from '../format-bytes.ts';
import { sha256File } from '../hash.ts';
import type { InitFormatChoice } from '../base/init-format.ts';
import type { BaseImage } from '../base/types.ts';
import { imagerJsonName, imagerJsonText, imagerManifestName, imagerOsEntry, imagerRepository, publishedUrl, releaseDate } from '../outputs/imager-repository.ts';
import { MANIFEST_FILE, type Manifest, type OutputFile } from '../outputs/manifest.ts';
import { SUMS_FILE, sha256sums } from '../outputs/sha256sums.ts';
import { writeBmap } from '../outputs/bmap.ts';
import { imageToolVersions } from '../outputs/host-tools.ts';
import { CHUNK_BYTES, type ChunkedXz, compressInChunks, pruneChunkCache } from '../outputs/xz-chunks.ts';
import { mappedBlocks } from '../image/mapped-blocks.ts';
import { REPO_ROOT } from '../pipeline/tool-version.ts';
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
}

export interface EmitResult {
  outDir: string;
  files: OutputFile[];
  manifest: Manifest;
  /** How the .img.xz was made: how many of its chunks were compressed in this build, and how many came from the cache. */
  compression?: ChunkedXz;
}

const TEMP = '.partial';
/** bmap-tools' usual block size, and ext4's: the .bmap maps 4 KiB blocks. */
const BMAP_BLOCK_SIZE = 4096;
/** The chunk cache keeps about this many images' worth of compressed chunks (the newest used), for warm rebuilds. */
const CHUNK_CACHE_IMAGES = 4;

async function describe(path: string, name: string): Promise<OutputFile> {
  return { name, size: (await stat(path)).size, sha256: await sha256File(path) };
}

/** The recipe's path as the manifest records it: relative to the checkout for the presets, so it is the same on every machine. */
function recordedRecipePath(path: string): string {
  const inside = relative(REPO_ROOT, path);
  return inside && !inside.startsWith('..') && !isAbsolute(inside) ? inside : path;
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
  input: { base: BaseImage; initFormat: InitFormatChoice; image: OutputFile; download: OutputFile; imageDate: Date },
  temp: (file: string) => string,
): Promise<Array<{ name: string; path: string; local: boolean }>> {
  const { outDir, publishUrl } = ctx.options;
  const entry = (url: string) =>
    imagerOsEntry({
      name: ctx.plan.name,
      description: ctx.plan.description,
      baseDescription: input.base.description,
      image: input.image,
      download: input.download,
      url,
      releaseDate: releaseDate(input.imageDate),
      initFormat: input.initFormat.format,
      models: ctx.plan.models,
    });
  const localUrl = pathToFileURL(join(outDir, input.download.name)).href;
  const written: Array<{ name: string; path: string; local: boolean }> = [];
  for (const [name, url] of [
    [imagerJsonName(ctx.plan.name), publishUrl ? publishedUrl(publishUrl, input.download.name) : localUrl],
    [imagerManifestName(ctx.plan.name), localUrl],
  ] as const) {
    const path = temp(name);
    await writeFile(path, imagerJsonText(imagerRepository([entry(url)], ctx.plan.models)));
    written.push({ name, path, local: url === localUrl });
  }
  return written;
}

/**
 * emit: `<name>.img`, `<name>.img.xz` (independent xz streams, one per chunk, each from the cache when its bytes
 * were compressed before: outputs/xz-chunks.ts), `<name>.img.bmap`, the two Raspberry Pi Imager files (which hold
 * the image's sizes and hashes), `manifest.json` and `SHA256SUMS` in the output directory. Each is written under a
 * temporary name and renamed when complete. The previous build's SHA256SUMS is removed first and the new one
 * written last, so a SHA256SUMS that is present always describes complete files of one build. Nothing written
 * depends on the clock or the output directory, except the Imager files that point at it (manifest.ts says which):
 * the same inputs give the same SHA256SUMS.
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
    const xzName = `${imgName}.xz`;
    const xzTemp = temp(xzName);
    let compression: ChunkedXz | undefined;
    if (ctx.options.compress === 'xz') {
      const cacheDir = ctx.cache.xzChunksDir;
      await mkdir(cacheDir, { recursive: true });
      ctx.status(`compressing with xz -${ctx.options.xzLevel} in chunks, on every core`);
      compression = await compressInChunks({
        image: imgTemp,
        output: xzTemp,
        cacheDir,
        level: ctx.options.xzLevel,
        log: ctx.log,
        onProgress: (done, total) => ctx.status(`compressing: ${formatBytes(done)} of ${formatBytes(total)}`),
      });
      ctx.log.info(`xz: ${compression.chunks} chunks, ${compression.recompressed} compressed, ${compression.reused} from the cache`);
      files.push({ name: imgName, size: compression.imageSize, sha256: compression.imageSha256 });
      files.push({ name: xzName, size: compression.xzSize, sha256: compression.xzSha256 });
      const pruned = await pruneChunkCache(cacheDir, CHUNK_CACHE_IMAGES * compression.xzSize);
      if (pruned.removed) ctx.log.info(`xz chunk cache: removed ${pruned.removed} old chunks (${pruned.freedBytes} bytes)`);
    } else {
      ctx.status('hashing the image');
      files.push(await describe(imgTemp, imgName));
    }
    const bmapName = `${imgName}.bmap`;
    const bmapTemp = temp(bmapName);
    ctx.status('writing the block map');
    await writeBmap({ image: imgTemp, output: bmapTemp, blockSize: BMAP_BLOCK_SIZE, mapped: await mappedBlocks(imgTemp, BMAP_BLOCK_SIZE, ctx.log) });
    files.push(await describe(bmapTemp, bmapName));
    const image = files[0]!;
    // Imager downloads the .xz when there is one, else the image itself (it writes an uncompressed .img as it is).
    const download = files.find((f) => f.name === xzName) ?? image;
    const sourceDate = input.work.sourceDate;
    const imageDate = new Date(sourceDate.epoch * 1000);
    const imagerFiles = await writeImagerFiles(ctx, { base: input.base, initFormat: input.initFormat, image, download, imageDate }, temp);
    for (const file of imagerFiles) if (!file.local) files.push(await describe(file.path, file.name));
    const { path: _cachePath, ...base } = input.base;
    const manifest: Manifest = {
      manifestVersion: 2,
      tool: { name: 'simplex-pi', ...input.tool },
      sourceDate: { epoch: sourceDate.epoch, iso: imageDate.toISOString(), from: sourceDate.from },
      recipe: { name, path: recordedRecipePath(input.recipe.path), sha256: input.recipe.sha256 },
      plan: ctx.plan,
      // What the image was published with, beside what Imager's list said (listedInitFormat).
      base: { ...base, initFormat: input.initFormat.format, initFormatReason: input.initFormat.reason },
      packages: input.seal.packages,
      simplexmq: { version: ctx.plan.simplexmq.version, binaries: input.binaries },
      build: {
        compress: ctx.options.compress,
        xzLevel: ctx.options.xzLevel,
        chunkBytes: CHUNK_BYTES,
        ...(ctx.options.publishUrl ? { publishUrl: ctx.options.publishUrl } : {}),
        packagesLayer: input.work.packagesKey,
        hostTools: await imageToolVersions(ctx.log),
      },
      outputs: files,
    };
    const manifestTemp = temp(MANIFEST_FILE);
    await writeFile(manifestTemp, `${JSON.stringify(manifest, null, 2)}\n`);
    files.push(await describe(manifestTemp, MANIFEST_FILE));
    const sumsTemp = temp(SUMS_FILE);
    await writeFile(sumsTemp, sha256sums(files));

    await rename(imgTemp, join(outDir, imgName));
    if (compression) await rename(xzTemp, join(outDir, xzName));
    else await rm(join(outDir, xzName), { force: true });
    await rename(bmapTemp, join(outDir, bmapName));
    for (const file of imagerFiles) await rename(file.path, join(outDir, file.name));
    await rename(manifestTemp, join(outDir, MANIFEST_FILE));
    await rename(sumsTemp, sums);
    return { outputs: { outDir, files, manifest, compression } };
  } finally {
    for (const path of temporaries) await rm(path, { force: true });
  }
}
