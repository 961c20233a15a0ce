import { mkdir, readFile, writeFile, chmod, chown, stat, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { UserError } from '../errors.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { walkTree } from './tree.ts';

export const OVERLAYS = join(dirname(fileURLToPath(import.meta.url)), '../../overlays');
export const PLAN_PATH = '/etc/simplex-pi/plan.json';

export interface RenderedFile {
  /** Path inside the image, starting with /. */
  path: string;
  content: Buffer;
  mode: number;
}

/** Handlebars for configuration files: no HTML escaping, and a missing value is an error rather than an empty string. */
function engine(): typeof Handlebars {
  const hb = Handlebars.create();
  hb.registerHelper('join', (list: unknown[], separator: unknown) => list.join(typeof separator === 'string' ? separator : ' '));
  return hb;
}

/**
 * Render an overlay tree: `*.hbs` files through handlebars with the plan (the `.hbs` suffix dropped), every
 * other file as it is. Modes come from the repository (git keeps the executable bit).
 */
export async function renderOverlay(overlayDir: string, plan: BuildPlan): Promise<RenderedFile[]> {
  const hb = engine();
  const files: RenderedFile[] = [];
  for (const entry of await walkTree(overlayDir)) {
    if (entry.kind !== 'file') continue;
    const source = await readFile(join(overlayDir, entry.path));
    const mode = entry.mode & 0o111 ? 0o755 : 0o644;
    if (!entry.path.endsWith('.hbs')) {
      files.push({ path: `/${entry.path}`, content: source, mode });
      continue;
    }
    let text: string;
    try {
      text = hb.compile(source.toString('utf8'), { noEscape: true, strict: true })({ plan });
    } catch (error) {
      throw new UserError(`cannot render overlays/${entry.path.split('/')[0]}/${entry.path}: ${(error as Error).message}`);
    }
    files.push({ path: `/${entry.path.slice(0, -'.hbs'.length)}`, content: Buffer.from(text), mode });
  }
  return files;
}

/** Everything the configure stage writes into the root filesystem, in the order it is written. */
export async function renderImageFiles(plan: BuildPlan, overlays = OVERLAYS): Promise<RenderedFile[]> {
  const files = await renderOverlay(join(overlays, 'rootfs'), plan);
  files.push({ path: PLAN_PATH, content: Buffer.from(`${JSON.stringify(plan, null, 2)}\n`), mode: 0o644 });
  return files;
}

/**
 * Write rendered files under `root`, owned by root, each atomically. Missing parent directories are created
 * 0755; existing directories keep their owner and mode.
 */
export async function writeRendered(root: string, files: readonly RenderedFile[]): Promise<void> {
  for (const file of files) {
    const target = join(root, file.path);
    const parent = dirname(target);
    await stat(parent).catch(async () => mkdir(parent, { recursive: true, mode: 0o755 }));
    const temporary = `${target}.simplex-pi-new`;
    await writeFile(temporary, file.content, { mode: file.mode });
    await chmod(temporary, file.mode);
    if (process.getuid?.() === 0) await chown(temporary, 0, 0);
    await rename(temporary, target);
  }
}
