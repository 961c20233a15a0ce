import type { BuildLog } from './log.ts';
import { messageOf } from './errors.ts';

interface Held {
  description: string;
  release: () => Promise<void>;
}

/**
 * What a build holds that must be given back whatever happens: loop devices, mounts, scratch directories.
 * Released in reverse order of acquisition on success, on failure and on Ctrl-C. A release that fails is logged
 * and the rest still run; `simplex-pi doctor` finds anything that survives a hard kill.
 */
export class Resources {
  private held: Held[] = [];

  constructor(private readonly log?: BuildLog) {}

  hold(description: string, release: () => Promise<void>): () => Promise<void> {
    const entry = { description, release };
    this.held.push(entry);
    return async () => {
      const index = this.held.indexOf(entry);
      if (index === -1) return;
      this.held.splice(index, 1);
      this.log?.info(`release ${description}`);
      await release();
    };
  }

  get count(): number {
    return this.held.length;
  }

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Release everything acquired after the first `keep` entries (all of it by default), newest first. Calls are
   * serialised: a Ctrl-C handler and a failing stage may both ask at once, and unmounting must stay in order.
   */
  releaseAll(keep = 0): Promise<string[]> {
    const next = this.queue.then(() => this.releaseNow(keep));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async releaseNow(keep: number): Promise<string[]> {
    const failures: string[] = [];
    while (this.held.length > keep) {
      const entry = this.held.pop()!;
      try {
        this.log?.info(`release ${entry.description}`);
        await entry.release();
      } catch (error) {
        failures.push(`${entry.description}: ${messageOf(error)}`);
        this.log?.info(`could not release ${entry.description}: ${messageOf(error)}`);
      }
    }
    return failures;
  }
}
