import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Listr, PRESET_TIMER } from 'listr2';
import { formatProgress } from './base/download.ts';
import { Cache } from './cache.ts';
import { BuildFailed, UserError } from './errors.ts';
import { run } from './exec.ts';
import { sha256Text } from './hash.ts';
import { OWNER_FILE, releaseLeftovers } from './image/leftovers.ts';
import { mountsUnder } from './image/mounts.ts';
import { BuildLog } from './log.ts';
import { type BuildPlan, resolvePlan } from './plan/plan.ts';
import { loadRecipe } from './recipe/load.ts';
import type { BaseSpec } from './recipe/schema.ts';
import { Resources } from './resources.ts';
import type { BuildOptions, StageContext } from './pipeline/context.ts';
import { toolVersion } from './pipeline/tool-version.ts';
import type { EmitResult } from './stages/emit.ts';
import { STAGES } from './stages/index.ts';

export interface BuildRequest {
  recipePath: string;
  /** `--base` on the command line replaces the recipe's base. */
  baseOverride?: (recipeBase: BaseSpec) => BaseSpec;
  /** Defaults to output/<recipe name>. */
  outDir?: string;
  compress: BuildOptions['compress'];
  xzLevel?: number;
  /** Where the image will be published; the Raspberry Pi Imager repository JSON points there. */
  publishUrl?: string;
  cacheRoot: string;
  verbose: boolean;
  /** Where the pipeline keeps what must be released on Ctrl-C; the CLI's signal handler releases it. */
  resources?: Resources;
}

export interface BuildOutcome {
  result: EmitResult;
  logPath: string;
  stageSeconds: Record<string, number>;
  /** What the user should know about the result (also in the build log). */
  warnings: string[];
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The build: recipe -> plan (no side effects, so a bad recipe writes nothing), then the stages in order. Whatever
 * happens, mounts and loop devices are released and the work directory removed; the build log goes next to the
 * output on success and into the cache's logs/ on failure.
 */
export async function build(request: BuildRequest): Promise<BuildOutcome> {
  const loaded = await loadRecipe(request.recipePath);
  const recipeBase = loaded.recipe.base;
  const plan: BuildPlan = resolvePlan(loaded.recipe, { base: request.baseOverride?.(recipeBase) });
  // Checked after the recipe so that a mistake in it is reported first, without sudo.
  if (process.getuid?.() !== 0) {
    throw new UserError('simplex-pi build needs root (it uses loop devices, mounts and a chroot): run it with sudo');
  }
  const outDir = resolve(request.outDir ?? join(ROOT, 'output', plan.name));
  const cache = new Cache(request.cacheRoot);
  await cache.ensure(cache.workRoot, cache.logs);
  const workDir = join(cache.workRoot, `${Date.now()}-${process.pid}`);
  await mkdir(workDir, { recursive: true });
  await writeFile(join(workDir, OWNER_FILE), `${process.pid}\n`);
  const logPath = join(workDir, 'build.log');
  const log = new BuildLog(logPath, request.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined);
  log.info(`simplex-pi build of ${loaded.path} (plan ${plan.name}, base ${plan.base.provider})`);
  const resources = request.resources ?? new Resources(log);
  const leftovers = await releaseLeftovers(cache.root, log);
  if (leftovers.workDirs.length) log.info(`released what earlier builds left: ${JSON.stringify(leftovers)}`);

  const interactive = Boolean(process.stdout.isTTY) && !request.verbose && !process.env.CI;
  let status: (text: string) => void = () => undefined;
  let lastProgress = 0;
  const warnings: string[] = [];
  const ctx: StageContext = {
    plan,
    cache,
    log,
    resources,
    workDir,
    options: { outDir, compress: request.compress, xzLevel: request.xzLevel ?? 6, publishUrl: request.publishUrl },
    status: (text) => status(text),
    warn: (text) => {
      warnings.push(text);
      log.info(`warning: ${text}`);
    },
    onProgress: (progress) => {
      const now = Date.now();
      // A line-by-line log (CI, --verbose) gets a progress line every few seconds, a terminal four a second.
      if (!interactive && now - lastProgress < 5000) return;
      lastProgress = now;
      status(formatProgress(progress));
    },
  };
  for (const warning of loaded.warnings) ctx.warn(warning);
  const stageSeconds: Record<string, number> = {};
  const done: object = { recipe: { path: loaded.path, sha256: sha256Text(loaded.source) }, tool: await toolVersion(), stageSeconds };
  const stage = (entry: (typeof STAGES.entries)[number]) => ({
    title: entry.name,
    skip: entry.skip && (() => entry.skip!(done)),
    task: async (_: unknown, task: { output: string }) => {
      const title = entry.name;
      status = (text: string) => {
        task.output = text;
        log.info(`[${title}] ${text}`);
      };
      log.info(`== stage ${title}`);
      const started = performance.now();
      try {
        Object.assign(done, await entry.run(ctx, done));
      } finally {
        stageSeconds[title] = Math.round((performance.now() - started) / 100) / 10;
        log.info(`== stage ${title} took ${stageSeconds[title]} s`);
      }
    },
  });

  const tasks = new Listr(
    STAGES.entries.map(stage),
    {
      concurrent: false,
      exitOnError: true,
      registerSignalListeners: false,
      renderer: interactive ? 'default' : 'simple',
      fallbackRenderer: 'simple',
      rendererOptions: { timer: PRESET_TIMER, showErrorMessage: false, collapseErrors: true } as never,
      fallbackRendererOptions: { timer: PRESET_TIMER } as never,
    },
  );

  let failure: unknown;
  try {
    await tasks.run();
  } catch (error) {
    failure = error;
  }
  for (const problem of await resources.releaseAll()) log.info(`could not release: ${problem}`);
  const finalLog = failure
    ? join(cache.logs, `${plan.name}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`)
    : join(outDir, `${plan.name}.build.log`);
  await mkdir(dirname(finalLog), { recursive: true });
  await copyFile(logPath, finalLog);
  // Never delete through a mount that could not be released: it may be a bind mount of the host's /dev.
  if ((await mountsUnder(workDir)).length === 0) await run('rm', ['-rf', '--one-file-system', workDir], { allowFailure: true });
  if (failure) throw new BuildFailed(failure, finalLog);
  return { result: (done as { outputs: EmitResult }).outputs, logPath: finalLog, stageSeconds, warnings };
}
