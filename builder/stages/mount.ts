import { join } from 'node:path';
import { type MountedImage, mountImage } from '../image/mount-image.ts';
import type { StageContext } from '../pipeline/context.ts';
import type { WorkImage } from './prepare.ts';

/** The work image mounted for a chroot at the build's one mount point (image/mount-image.ts says what is mounted). */
export function mountWork(ctx: StageContext, work: WorkImage): Promise<MountedImage> {
  return mountImage(work.path, join(ctx.workDir, 'root'), ctx.resources, ctx.log);
}

/**
 * mount: loop devices per partition, chroot mounts, services forbidden to start. The image stays mounted for the
 * stages up to seal, which releases it; on a failure the build releases whatever is still held.
 */
export async function mountStage(ctx: StageContext, { work }: { work: WorkImage }): Promise<{ mounted: MountedImage }> {
  return { mounted: await mountWork(ctx, work) };
}
