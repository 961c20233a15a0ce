import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Cache } from '../cache.ts';
import { BuildFailed, UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { sha256Text } from '../hash.ts';
import { OWNER_FILE, releaseLeftovers } from '../image/leftovers.ts';
import { mountsUnder } from '../image/mounts.ts';
import { BuildLog } from '../log.ts';
import type { BuildPlan } from '../plan/plan.ts';
import type { LoadedRecipe } from '../recipe/load.ts';
import type { BaseSpec } from '../recipe/schema.ts';
import { Resources } from '../resources.ts';
import type { EmitResult } from '../stages/emit.ts';
import { STAGES, type StageOutputs } from '../stages/index.ts';
import type { BuildOptions, StageContext } from './context.ts';
import { loadPlan } from './load-plan.ts';
import { BuildProgress } from './progress.ts';
import type { StageList } from './stage-list.ts';
import { REPO_ROOT, toolVersion } from './tool-version.ts';
import { DEFAULT_LOCK } from '../stages/simplexmq-lock.ts';

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
  /** simplexmq.lock.json to use; defaults to the one that ships with simplex-pi. */
  lockPath?: string;
  /** `--update-lock`: enter the release notes' sha256s into the lock first. */
  updateLock?: boolean;
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

/**
 * The build: recipe -> plan (no side effects, so a bad recipe writes nothing), then the stages in order. Whatever
 * happens, mounts and loop devices are released and the work directory removed; the build log goes next to the
 * output on success and into the cache's logs/ on failure.
 */
export async function build(request: BuildRequest): Promise<BuildOutcome> {
  const { loaded, plan } = await loadPlan(request.recipePath, request.baseOverride);
  // Checked after the recipe so that a mistake in it is reported first, without sudo.
  if (process.getuid?.() !== 0) {
    throw new UserError('simplex-pi build needs root (it uses loop devices, mounts and a chroot): run it with sudo');
  }
  const { ctx, progress, logPath, warnings } = await prepareBuild(request, loaded, plan);
  const stageSeconds: Record<string, number> = {};
  let done: StageOutputs | undefined;
  let failure: unknown;
  try {
    const recipe = { path: loaded.path, sha256: sha256Text(loaded.source) };
    done = await runStages(STAGES, ctx, progress, { recipe, tool: await toolVersion(), stageSeconds });
  } catch (error) {
    failure = error;
  }
  const finalLog = await finishBuild(ctx, logPath, Boolean(failure));
  if (failure || !done) throw new BuildFailed(failure, finalLog);
  return { result: done.outputs, logPath: finalLog, stageSeconds, warnings };
}

interface PreparedBuild {
  ctx: StageContext;
  progress: BuildProgress;
  /** The build log, in the work directory until the build ends. */
  logPath: string;
  /** Filled by `ctx.warn` as the stages run. */
  warnings: string[];
}

/**
 * A fresh work directory in the cache with its owner file (image/leftovers.ts) and the build log, what killed
 * builds left released, and the context every stage gets.
 */
async function prepareBuild(request: BuildRequest, loaded: LoadedRecipe, plan: BuildPlan): Promise<PreparedBuild> {
  const outDir = resolve(request.outDir ?? join(REPO_ROOT, 'output', plan.name));
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

  const progress = new BuildProgress(log, request.verbose);
  const warnings: string[] = [];
  const ctx: StageContext = {
    plan,
    cache,
    log,
    resources,
    workDir,
    options: {
      outDir,
      compress: request.compress,
      xzLevel: request.xzLevel ?? 6,
      publishUrl: request.publishUrl,
      lockPath: request.lockPath ?? DEFAULT_LOCK,
      updateLock: request.updateLock ?? false,
    },
    status: progress.status,
    warn: (text) => {
      warnings.push(text);
      log.info(`warning: ${text}`);
    },
    onProgress: progress.onProgress,
  };
  for (const warning of loaded.warnings) ctx.warn(warning);
  return { ctx, progress, logPath, warnings };
}

/**
 * The stages in order, each given what the ones before it returned; `== stage NAME` and its time in the build log,
 * the time also in `start.stageSeconds`. The first failure stops the build and is thrown.
 */
async function runStages<Start extends { stageSeconds: Record<string, number> }, Done extends object>(
  stages: StageList<Start, Done>,
  ctx: StageContext,
  progress: BuildProgress,
  start: Start,
): Promise<Done> {
  const seconds = start.stageSeconds;
  const done: object = { ...start };
  await progress.run(
    stages.entries.map(({ name, run: runStage, skip }) => ({
      title: name,
      skip: skip && (() => skip(done)),
      run: async () => {
        ctx.log.info(`== stage ${name}`);
        const started = performance.now();
        try {
          Object.assign(done, await runStage(ctx, done));
        } finally {
          seconds[name] = Math.round((performance.now() - started) / 100) / 10;
          ctx.log.info(`== stage ${name} took ${seconds[name]} s`);
        }
      },
    })),
  );
  return done as Done;
}

/**
 * Release every mount and loop device still held, put the build log next to the output (or, after a failure, into
 * the cache's logs/), and remove the work directory. Returns where the log is.
 */
async function finishBuild(ctx: StageContext, logPath: string, failed: boolean): Promise<string> {
  const { log, plan, workDir } = ctx;
  for (const problem of await ctx.resources.releaseAll()) log.info(`could not release: ${problem}`);
  const finalLog = failed
    ? join(ctx.cache.logs, `${plan.name}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`)
    : join(ctx.options.outDir, `${plan.name}.build.log`);
  await mkdir(dirname(finalLog), { recursive: true });
  await copyFile(logPath, finalLog);
  // Never delete through a mount that could not be released: it may be a bind mount of the host's /dev.
  if ((await mountsUnder(workDir)).length === 0) await run('rm', ['-rf', '--one-file-system', workDir], { allowFailure: true });
  return finalLog;
}
