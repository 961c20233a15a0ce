import { UserError } from '../errors.ts';

/** CI gives the signing key's password through this variable; a person types it at the prompt. */
export const PASSWORD_ENV = 'SIMPLEX_PI_KEY_PASSWORD';

export interface PasswordRequest {
  /** What the password is for, for the prompt and messages: "the new secret key", "secret key keys/minisign.key". */
  purpose: string;
  /** Ask twice and require the same answer (a new key: a typo would lock the key forever). */
  confirm: boolean;
  /** What to do instead, when there is neither the variable nor a terminal. */
  otherwise: string;
}

/** The password from SIMPLEX_PI_KEY_PASSWORD, or typed at a terminal without echo. */
export async function obtainPassword(request: PasswordRequest, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env[PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!process.stdin.isTTY) {
    throw new UserError(`${request.purpose} needs a password: set ${PASSWORD_ENV}, or run this in a terminal to type it; ${request.otherwise}`);
  }
  const password = await promptHidden(`Password for ${request.purpose}: `);
  if (password === '') throw new UserError(`an empty password protects nothing; ${request.otherwise}`);
  if (request.confirm && (await promptHidden('The same password again: ')) !== password) {
    throw new UserError('the two passwords differ; nothing was written, run the command again');
  }
  return password;
}

/** Read one line from the terminal in raw mode, so the characters are never shown. */
async function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // Raw mode before the prompt: whatever is typed once the prompt shows is never echoed.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.setEncoding('utf8');
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (chunk: string) => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n') {
            stdin.off('data', onData);
            resolve(typed);
            return;
          }
          if (char === '\u0003') {
            stdin.off('data', onData);
            reject(new UserError('interrupted; nothing was written', 130));
            return;
          }
          if (char === '\u0004') {
            stdin.off('data', onData);
            reject(new UserError('no password given (end of input); nothing was written'));
            return;
          }
          if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
          else typed += char;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}
