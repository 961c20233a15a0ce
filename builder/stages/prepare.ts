import { join } from 'node:path';
import type { BaseImage } from '../base/types.ts';
import { exists } from '../exists.ts';
import { run } from '../exec.ts';
import { hashOf } from '../hash.ts';
import { checkHostHandlesRoot, ext4Target } from '../image/ext4.ts';
import { type BaseMachineId, readBaseMachineId } from '../image/machine-id.ts';
import { raspberryPiLayout, readPartitionTable } from '../image/partitions.ts';
import { growRoot } from '../image/resize.ts';
import { type SourceDate, chooseSourceDate, readRootWriteTime } from '../image/source-date-epoch.ts';
import type { StageContext } from '../pipeline/context.ts';

/** Room for the packages, the binaries and apt's downloads while building; given back by seal. */
export const BUILD_GROWTH_MIB = 1536;
/** Bump when the packages stage changes what it does, so old layers are not reused. */
const PACKAGES_STAGE_VERSION = 2;

export interface WorkImage {
  path: string;
  /** The cache key of the image after the packages stage. */
  packagesKey: string;
  /** The work image was copied from a cached packages layer: the packages stage has nothing to do. */
  fromLayer: boolean;
  /** /etc/machine-id as the base has it, read before any package script could change it; seal puts it back. */
  baseMachineId: BaseMachineId;
  /** The one time written into the image (source-date-epoch.ts says how it is chosen). */
  sourceDate: SourceDate;
}

/** Everything the image after `packages` depends on. Rendered configuration is not in it: editing it never re-runs apt. */
export function packagesLayerKey(base: BaseImage, packages: readonly string[]): string {
  return hashOf({ version: PACKAGES_STAGE_VERSION, base: base.sha256, packages: [...packages].sort(), growth: BUILD_GROWTH_MIB }).slice(0, 24);
}

/** Copy keeping holes: base and layer images are mostly empty space. */
export async function sparseCopy(from: string, to: string, ctx: StageContext): Promise<void> {
  await run('cp', ['--sparse=always', '--reflink=auto', from, to], { log: ctx.log, what: `copy ${from}` });
}

/**
 * prepare: check that this host's e2fsprogs can handle the base's root filesystem and note what seal needs from the
 * base (both read from the cached base image in place), then the work image: from the cached packages layer when
 * there is one, else the base grown for the build.
 */
export async function prepareStage(ctx: StageContext, { base }: { base: BaseImage }): Promise<{ work: WorkImage }> {
  const rootPartition = raspberryPiLayout(await readPartitionTable(base.path, ctx.log), base.path).root;
  const root = ext4Target(base.path, rootPartition);
  ctx.status('checking the root filesystem against this host\'s e2fsprogs');
  await checkHostHandlesRoot(root, { log: ctx.log });
  const baseMachineId = await readBaseMachineId(root, ctx.log);
  ctx.log.info(`the base's /etc/machine-id: ${baseMachineId.kind}`);
  const sourceDate = chooseSourceDate({
    env: process.env.SOURCE_DATE_EPOCH,
    recipe: ctx.plan.sourceDateEpoch,
    releaseDate: base.releaseDate,
    rootWrittenAt: await readRootWriteTime(base.path, rootPartition),
  });
  ctx.log.info(`SOURCE_DATE_EPOCH ${sourceDate.epoch} (${new Date(sourceDate.epoch * 1000).toISOString()}), from ${sourceDate.from}`);
  const packagesKey = packagesLayerKey(base, ctx.plan.packages);
  const layer = ctx.cache.layer('packages', packagesKey);
  const path = join(ctx.workDir, 'work.img');
  if (await exists(layer)) {
    ctx.status(`from cached layer packages-${packagesKey}`);
    await sparseCopy(layer, path, ctx);
    return { work: { path, packagesKey, fromLayer: true, baseMachineId, sourceDate } };
  }
  await sparseCopy(base.path, path, ctx);
  ctx.status(`growing the root filesystem by ${BUILD_GROWTH_MIB} MiB`);
  await growRoot(path, BUILD_GROWTH_MIB, ctx.log);
  return { work: { path, packagesKey, fromLayer: false, baseMachineId, sourceDate } };
}
