import type { Cache } from '../cache.ts';
import type { BuildLog } from '../log.ts';
import type { BuildPlan } from '../plan/plan.ts';
import type { ProgressReporter } from '../progress.ts';
import type { Resources } from '../resources.ts';

export type Compression = 'xz' | 'none';

export interface BuildOptions {
  outDir: string;
  compress: Compression;
  /** xz preset 0–9. */
  xzLevel: number;
  /**
   * Where the image will be published (the URL of the directory holding it): the Raspberry Pi Imager repository
   * JSON points there. Without it, the JSON points at the local file.
   */
  publishUrl?: string;
  /** simplexmq.lock.json (stages/simplexmq-lock.ts): the sha256s of binaries with `sha256: lock`. */
  lockPath: string;
  /** Enter the release notes' sha256s for the recipe's simplexmq version into the lock before using it. */
  updateLock: boolean;
}

/** What every stage gets: the plan, where to put things, and how to report. */
export interface StageContext {
  plan: BuildPlan;
  cache: Cache;
  log: BuildLog;
  resources: Resources;
  /** Scratch directory of this build, inside the cache; removed at the end. */
  workDir: string;
  options: BuildOptions;
  /** One short line shown under the running stage. */
  status: (text: string) => void;
  /** Something the user should know although the build goes on: logged, and printed when the build ends. */
  warn: (text: string) => void;
  onProgress: ProgressReporter;
}
