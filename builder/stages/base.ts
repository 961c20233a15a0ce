import { debianBase } from '../base/debian.ts';
import { fileBase } from '../base/file.ts';
import { raspiosBase } from '../base/raspios.ts';
import type { BaseContext, BaseImage } from '../base/types.ts';
import type { StageContext } from './context.ts';

/** base: a verified base image in the cache, whichever provider the plan names. */
export async function baseStage(ctx: StageContext): Promise<BaseImage> {
  const baseCtx: BaseContext = {
    cache: ctx.cache,
    log: ctx.log,
    resources: ctx.resources,
    workDir: ctx.workDir,
    onProgress: ctx.onProgress,
    status: ctx.status,
  };
  const spec = ctx.plan.base;
  switch (spec.provider) {
    case 'raspios':
      return raspiosBase(spec, baseCtx);
    case 'debian':
      return debianBase(spec, baseCtx);
    case 'file':
      return fileBase(spec, baseCtx);
  }
}
