import { execa, type Options } from 'execa';
import { UserError } from './errors.ts';
import { type BuildLog, silentLog } from './log.ts';

export interface RunOptions {
  log?: BuildLog;
  input?: string | Buffer;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Milliseconds. */
  timeout?: number;
  /** Do not throw on a non-zero exit; the caller inspects `exitCode`. */
  allowFailure?: boolean;
  /** Run with exactly `env`, not merged into this process's environment. */
  cleanEnv?: boolean;
  /** A short description for the error message, e.g. "install packages in the image". */
  what?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const running = new Set<{ kill: (signal?: NodeJS.Signals) => boolean }>();

/** Stop every program this process started and is still waiting for (on Ctrl-C, before releasing mounts). */
export function killRunning(signal: NodeJS.Signals = 'SIGTERM'): number {
  for (const subprocess of running) subprocess.kill(signal);
  return running.size;
}

/** Quote an argument for display only: commands are never run through a shell. */
export function displayArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function displayCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map(displayArg).join(' ');
}

/** The last lines of a command's output, which is where tools put their reason for failing. */
function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * A program that failed. It is a UserError, printed without a stack, because the reason is nearly always the
 * host or the input (a missing tool, a full disk, a damaged image) and the message names the command and shows
 * its output. A bug (wrong arguments from our code) fails the same way, so `run` also writes where the command
 * was called from into the build log, which every failed build keeps and the CLI names. Arguments or options
 * execa refuses outright (a NUL byte, a negative timeout) are bugs only; execa throws a TypeError for them, which
 * `run` lets through, so the CLI prints it as a bug, with its stack.
 */
export class CommandFailed extends UserError {
  constructor(
    message: string,
    readonly command: string,
    /** The program's exit code; undefined when it did not start or was killed. (`exitCode` is the CLI's own.) */
    readonly programExitCode: number | undefined,
  ) {
    super(message);
    this.name = 'CommandFailed';
  }
}

/** The `at …` lines of an error's stack: the call chain that ran the command, for the build log. */
function callers(error: Error): string {
  return (error.stack ?? '')
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n');
}

/**
 * Run a program with an argument array (never a shell string), record it and its output in the build log,
 * and turn a failure into a message that names the command and shows the end of its output.
 */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const log = options.log ?? silentLog;
  const shown = displayCommand(file, args);
  log.command(shown);
  const execaOptions: Options = {
    reject: false,
    all: true,
    stripFinalNewline: false,
    env: options.env,
    extendEnv: !options.cleanEnv,
    cwd: options.cwd,
    timeout: options.timeout,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' }),
  };
  const subprocess = execa(file, args, execaOptions);
  running.add(subprocess);
  // Output goes to the log as it comes, so a long step's progress is visible there and survives a kill.
  subprocess.all?.on('data', (chunk: Buffer) => log.append(chunk));
  const result = await subprocess.finally(() => running.delete(subprocess));
  const all = String(result.all ?? '');
  const exitCode = result.exitCode ?? (result.signal ? 128 : 1);
  if (result.failed && !options.allowFailure) {
    const why = result.timedOut
      ? `timed out after ${options.timeout} ms`
      : result.signal
        ? `was killed by ${result.signal}`
        : result.exitCode === undefined
          ? `could not be started (${result.originalMessage ?? 'unknown error'}); is it installed? \`simplex-pi doctor\` checks`
          : `exited with code ${exitCode}`;
    const what = options.what ? `Could not ${options.what}: ` : '';
    const error = new CommandFailed(`${what}\`${shown}\` ${why}${all.trim() ? `:\n${tail(all)}` : ''}`, shown, result.exitCode);
    log.info(`failed: ${shown} (${why}), run from:\n${callers(error)}`);
    throw error;
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode };
}
