import { debianBase } from '../base/debian.ts';
import { fileBase } from '../base/file.ts';
import { raspiosBase } from '../base/raspios.ts';
import type { BaseImage } from '../base/types.ts';
import type { StageContext } from '../pipeline/context.ts';

/** base: a verified base image in the cache, whichever provider the plan names. */
export async function baseStage(ctx: StageContext): Promise<{ base: BaseImage }> {
  return { base: await providerBase(ctx) };
}

function providerBase(ctx: StageContext): Promise<BaseImage> {
  const spec = ctx.plan.base;
  switch (spec.provider) {
    case 'raspios':
      return raspiosBase(spec, ctx);
    case 'debian':
      return debianBase(spec, ctx);
    case 'file':
      return fileBase(spec, ctx);
  }
}
