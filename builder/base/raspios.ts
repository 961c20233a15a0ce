import { rm } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import type { BaseSpec } from '../recipe/schema.ts';
import { decompressVerified } from './decompress.ts';
import { downloadVerified } from './download.ts';
import { type ResolvedOs, resolveOs } from './raspios-os-list.ts';
import { loadStoredBase, saveStoredBaseRecord } from './store.ts';
import type { BaseContext, BaseImage } from './types.ts';

type RaspiosSpec = Extract<BaseSpec, { provider: 'raspios' }>;

interface RaspiosMeta {
  name: string;
  url: string;
  downloadSha256?: string;
  releaseDate?: string;
  listedInitFormat?: string;
}

/** What to fetch: the Imager repository's current entry, or the recipe's pinned URL and sha256. */
async function resolveRaspios(spec: RaspiosSpec, ctx: BaseContext): Promise<ResolvedOs & { pinned: boolean }> {
  if (spec.url || spec.sha256) {
    if (!spec.url || !spec.sha256) throw new UserError('recipe.base: a pinned Raspberry Pi OS image needs both url and sha256');
    return {
      name: spec.os_name,
      url: spec.url,
      // A pinned sha256 is that of the file at the URL; the uncompressed image is hashed as it is written.
      extractSha256: '',
      downloadSha256: spec.sha256,
      releaseDate: spec.release_date,
      // Nothing lists a pinned image: its init_format is detected from the image (or set in the recipe).
      pinned: true,
    };
  }
  ctx.status?.(`resolving "${spec.os_name}" in ${spec.imager_json}`);
  const found = await resolveOs(spec.imager_json, spec.os_name, ctx.log);
  if (!found) {
    throw new UserError(`"${spec.os_name}" is not listed in ${spec.imager_json} (recipe base.os_name); check the name Raspberry Pi Imager shows, or pin base.url and base.sha256`);
  }
  return { ...found, releaseDate: spec.release_date ?? found.releaseDate, pinned: false };
}

/**
 * Raspberry Pi OS Lite: download (resumable, sha256 checked while streaming), decompress (sha256 of the image
 * checked against Imager's `extract_sha256`), cache by sha256.
 */
export async function raspiosBase(spec: RaspiosSpec, ctx: BaseContext): Promise<BaseImage> {
  const os = await resolveRaspios(spec, ctx);
  const key = os.pinned ? `raspios-dl-${os.downloadSha256}` : `raspios-${os.extractSha256}`;
  const image = ctx.cache.base(key);
  const describe = (sha256: string, meta: RaspiosMeta): BaseImage => ({
    provider: 'raspios',
    path: image,
    sha256,
    description: `${meta.name} ${meta.releaseDate ?? ''}`.trim(),
    url: meta.url,
    downloadSha256: meta.downloadSha256,
    releaseDate: meta.releaseDate,
    listedInitFormat: meta.listedInitFormat,
  });
  const stored = await loadStoredBase<RaspiosMeta>(image, ctx.log, os.extractSha256 || undefined);
  if (stored) return describe(stored.sha256, stored.meta);

  ctx.status?.(`downloading ${os.url}`);
  const download = await downloadVerified(ctx.cache, {
    url: os.url,
    what: `Raspberry Pi OS image ${os.name}`,
    sha256: os.downloadSha256,
    log: ctx.log,
    onProgress: ctx.onProgress,
  });
  await ctx.cache.ensure(ctx.cache.basesDir);
  ctx.status?.('decompressing and verifying');
  let sha256: string;
  try {
    sha256 = await decompressVerified(download, image, {
      expected: os.extractSha256 || undefined,
      what: `Raspberry Pi OS image ${os.name}`,
      log: ctx.log,
      onProgress: ctx.onProgress,
    });
  } catch (error) {
    // A download whose content is wrong must not be found again in the cache.
    if (!os.downloadSha256) await rm(download, { force: true });
    throw error;
  }
  const meta: RaspiosMeta = { name: os.name, url: os.url, downloadSha256: os.downloadSha256, releaseDate: os.releaseDate, listedInitFormat: os.initFormat };
  await saveStoredBaseRecord(image, sha256, meta);
  return describe(sha256, meta);
}
