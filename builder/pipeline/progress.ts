import { Listr, PRESET_TIMER } from 'listr2';
import { type ProgressReporter, formatProgress } from '../progress.ts';
import type { BuildLog } from '../log.ts';

export interface ProgressStep {
  title: string;
  /** Why the step has nothing to do (shown instead of its title), or false to run it. */
  skip?: () => string | false;
  run: () => Promise<void>;
}

/**
 * What the user sees while the build runs: on a terminal, listr2's list of the stages with their times and the
 * running stage's status line under it; in CI, with --verbose or without a terminal, a plain line for each.
 * Every status line also goes to the build log as `[stage] text`.
 */
export class BuildProgress {
  readonly interactive: boolean;
  private show: (text: string) => void = () => undefined;
  private lastProgress = 0;

  constructor(
    private readonly log: BuildLog,
    verbose: boolean,
  ) {
    this.interactive = Boolean(process.stdout.isTTY) && !verbose && !process.env.CI;
  }

  /** One short line under the running stage. */
  readonly status = (text: string): void => this.show(text);

  readonly onProgress: ProgressReporter = (progress) => {
    const now = Date.now();
    // A line-by-line log (CI, --verbose) gets a progress line every few seconds, a terminal four a second.
    if (!this.interactive && now - this.lastProgress < 5000) return;
    this.lastProgress = now;
    this.show(formatProgress(progress));
  };

  /** Run the steps one after the other; the first failure stops the rest and is thrown. */
  async run(steps: readonly ProgressStep[]): Promise<void> {
    const tasks = new Listr(
      steps.map((step) => ({
        title: step.title,
        skip: step.skip,
        task: async (_: unknown, task: { output: string }) => {
          this.show = (text: string) => {
            task.output = text;
            this.log.info(`[${step.title}] ${text}`);
          };
          await step.run();
        },
      })),
      {
        concurrent: false,
        exitOnError: true,
        registerSignalListeners: false,
        renderer: this.interactive ? 'default' : 'simple',
        fallbackRenderer: 'simple',
        rendererOptions: { timer: PRESET_TIMER, showErrorMessage: false, collapseErrors: true } as never,
        fallbackRendererOptions: { timer: PRESET_TIMER } as never,
      },
    );
    await tasks.run();
  }
}
