import type { MountedImage } from '../image/mount-image.ts';
import { renderImageFiles, writeRendered } from '../render/render.ts';
import type { StageContext } from './context.ts';

/** configure: the rendered overlays and the plan, written into the image. `simplex-pi render` shows the same files. */
export async function configureStage(ctx: StageContext, mounted: MountedImage): Promise<string[]> {
  const files = await renderImageFiles(ctx.plan);
  await writeRendered(mounted.root, files);
  for (const file of files) ctx.log.info(`wrote ${file.path} (${file.mode.toString(8)})`);
  return files.map((f) => f.path);
}
