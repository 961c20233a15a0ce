import { rename, rm } from 'node:fs/promises';
import { partialPath } from '../cache.ts';
import { chrootRun } from '../image/chroot.ts';
import { withInitramfsUpdatesOff } from '../image/initramfs.ts';
import type { StageContext } from '../pipeline/context.ts';
import type { NoOutput } from '../pipeline/stage-list.ts';
import { mountWork } from './mount.ts';
import { type WorkImage, sparseCopy } from './prepare.ts';

/**
 * packages: tor, nftables, Node and the simplexmq runtime libraries from the base's own apt sources, so they
 * match the base release and get its security updates. The initramfs is not rebuilt meanwhile (initramfs.ts says
 * why). The result is cached as an image layer.
 */
export async function packagesStage(ctx: StageContext, { work }: { work: WorkImage }): Promise<NoOutput> {
  const mounted = await mountWork(ctx, work);
  try {
    await withInitramfsUpdatesOff(mounted.root, async () => {
      ctx.status('apt-get update');
      await chrootRun(mounted.root, ['apt-get', 'update'], { log: ctx.log, what: 'update the package lists in the image (needs the Debian or Raspberry Pi OS archive)' });
      ctx.status(`apt-get install ${ctx.plan.packages.join(' ')}`);
      await chrootRun(mounted.root, ['apt-get', 'install', '--yes', '--no-install-recommends', ...ctx.plan.packages], {
        log: ctx.log,
        what: 'install packages in the image',
      });
      await chrootRun(mounted.root, ['apt-get', 'clean'], { log: ctx.log });
    });
    await mounted.commitBoot(work.sourceDate.epoch);
  } finally {
    await mounted.release();
  }
  ctx.status('saving the layer to the cache');
  const layer = ctx.cache.layer('packages', work.packagesKey);
  await ctx.cache.ensure(ctx.cache.layersDir);
  const temporary = partialPath(layer);
  try {
    await sparseCopy(work.path, temporary, ctx);
    await rename(temporary, layer);
  } finally {
    await rm(temporary, { force: true });
  }
  return {};
}
