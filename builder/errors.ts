/**
 * An error meant for the person running simplex-pi: its message says what went wrong, which input, and what to
 * do. The CLI prints it without a stack trace; anything else is a bug and is printed with one.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}

/** The message of any thrown value, for logs. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A build that stopped: the reason, and where its log was kept. */
export class BuildFailed extends Error {
  constructor(
    readonly reason: unknown,
    readonly logPath: string,
  ) {
    super(messageOf(reason));
    this.name = 'BuildFailed';
  }
}
