import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Listr, PRESET_TIMER } from 'listr2';
import { formatProgress } from './progress.ts';
import type { BaseImage } from './base/types.ts';
import { Cache } from './cache.ts';
import { BuildFailed, UserError } from './errors.ts';
import { run } from './exec.ts';
import { sha256Text } from './hash.ts';
import { OWNER_FILE, releaseLeftovers } from './image/leftovers.ts';
import { type MountedImage, mountImage } from './image/mount-image.ts';
import { mountsUnder } from './image/mounts.ts';
import { BuildLog } from './log.ts';
import { type BuildPlan, resolvePlan } from './plan/plan.ts';
import { loadRecipe } from './recipe/load.ts';
import type { BaseSpec } from './recipe/schema.ts';
import { Resources } from './resources.ts';
import { baseStage } from './stages/base.ts';
import { type InstalledBinary, binariesStage } from './stages/binaries.ts';
import { type ConfigureResult, configureStage } from './stages/configure.ts';
import { firstbootStage } from './stages/firstboot.ts';
import type { BuildOptions, StageContext } from './stages/context.ts';
import { type EmitResult, emitStage } from './stages/emit.ts';
import { packagesStage } from './stages/packages.ts';
import { type WorkImage, prepareStage } from './stages/prepare.ts';
import { type SealResult, sealStage } from './stages/seal.ts';

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

export async function toolVersion(): Promise<{ version: string; commit?: string }> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const commit = await run('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], { allowFailure: true }).catch(() => undefined);
  return { version: pkg.version, commit: commit?.exitCode === 0 ? commit.stdout.trim() : undefined };
}

interface PipelineState {
  base?: BaseImage;
  work?: WorkImage;
  mounted?: MountedImage;
  binaries?: InstalledBinary[];
  configure?: ConfigureResult;
  seal?: SealResult;
  result?: EmitResult;
}

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
  const state: PipelineState = {};
  const stageSeconds: Record<string, number> = {};
  const stage = (title: string, fn: () => Promise<unknown>, skip?: () => string | false) => ({
    title,
    skip,
    task: async (_: unknown, task: { output: string }) => {
      status = (text: string) => {
        task.output = text;
        log.info(`[${title}] ${text}`);
      };
      log.info(`== stage ${title}`);
      const started = performance.now();
      try {
        await fn();
      } finally {
        stageSeconds[title] = Math.round((performance.now() - started) / 100) / 10;
        log.info(`== stage ${title} took ${stageSeconds[title]} s`);
      }
    },
  });

  const tasks = new Listr(
    [
      stage('base', async () => (state.base = await baseStage(ctx))),
      stage('prepare', async () => (state.work = await prepareStage(ctx, state.base!))),
      stage('packages', () => packagesStage(ctx, state.work!), () => (state.work?.fromLayer ? `packages (cached layer ${state.work.packagesKey})` : false)),
      stage('mount', async () => (state.mounted = await mountImage(state.work!.path, join(workDir, 'root'), resources, log))),
      stage('binaries', async () => (state.binaries = await binariesStage(ctx, state.mounted!))),
      stage('configure', async () => (state.configure = await configureStage(ctx, state.base!, state.mounted!))),
      stage('firstboot', () => firstbootStage(ctx, state.mounted!)),
      stage('seal', async () => (state.seal = await sealStage(ctx, state.mounted!, state.work!))),
      stage('emit', async () => {
        state.result = await emitStage(ctx, {
          work: state.work!,
          base: state.base!,
          initFormat: state.configure!.initFormat,
          binaries: state.binaries!,
          seal: state.seal!,
          recipe: { path: loaded.path, sha256: sha256Text(loaded.source) },
          tool: await toolVersion(),
          stageSeconds,
        });
      }),
    ],
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
  return { result: state.result!, logPath: finalLog, stageSeconds, warnings };
}
