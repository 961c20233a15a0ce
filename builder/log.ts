import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The build log: every command with its output and every stage boundary, appended synchronously so the file is
 * complete even when the process is killed. `echo` receives command lines for `--verbose`.
 */
export class BuildLog {
  constructor(
    readonly path: string | undefined,
    private readonly echo?: (line: string) => void,
  ) {
    if (path) mkdirSync(dirname(path), { recursive: true });
  }

  write(text: string): void {
    if (!this.path) return;
    appendFileSync(this.path, text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Raw program output, as it arrives. */
  append(chunk: Buffer | string): void {
    if (this.path) appendFileSync(this.path, chunk);
  }

  info(line: string): void {
    this.write(`[${new Date().toISOString()}] ${line}`);
  }

  command(line: string): void {
    this.write(`[${new Date().toISOString()}] $ ${line}`);
    this.echo?.(`$ ${line}`);
  }
}

/** A log that goes nowhere, for pure helpers and unit tests. */
export const silentLog = new BuildLog(undefined);
