import { UserError } from '../errors.ts';
import { exists } from '../exists.ts';
import { sha256File } from '../hash.ts';
import { decompressVerified } from './decompress.ts';
import { loadStoredBase, saveStoredBaseRecord } from './store.ts';
import type { BaseContext, BaseImage } from './types.ts';

interface FileMeta {
  sourcePath: string;
}

/** A local .img or .img.xz, verified against the sha256 the recipe gives for that exact file. */
export async function fileBase(spec: { path: string; sha256: string }, ctx: BaseContext): Promise<BaseImage> {
  const image = ctx.cache.base(`file-${spec.sha256}`);
  const describe = (sha256: string): BaseImage => ({
    provider: 'file',
    path: image,
    sha256,
    description: `local image ${spec.path}`,
    sourcePath: spec.path,
    downloadSha256: spec.sha256,
  });
  const stored = await loadStoredBase<FileMeta>(image, ctx.log);
  if (stored) return describe(stored.sha256);
  if (!(await exists(spec.path))) throw new UserError(`base image ${spec.path} does not exist (recipe base.path)`);
  ctx.status?.('verifying sha256');
  const actual = await sha256File(spec.path);
  if (actual !== spec.sha256) {
    throw new UserError(`sha256 mismatch for base image ${spec.path}: expected ${spec.sha256}, got ${actual}; nothing was written`);
  }
  await ctx.cache.ensure(ctx.cache.basesDir);
  const sha256 = await decompressVerified(spec.path, image, { what: `base image ${spec.path}`, log: ctx.log, onProgress: ctx.onProgress });
  await saveStoredBaseRecord<FileMeta>(image, sha256, { sourcePath: spec.path });
  return describe(sha256);
}
