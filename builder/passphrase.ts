import { createInterface } from 'node:readline';

/**
 * A passphrase for a backup (the device's `backup --passphrase`, the host's `restore --passphrase`), never from the
 * command line (it would stand in the shell's history and in every process listing). From a terminal: asked on
 * stderr without echo, twice when it protects something new. From a pipe (scripts, tests): the first line of stdin.
 */

/** Shorter ones fall to a guess, and this one guards every key of every relay. */
export const MIN_PASSPHRASE_LENGTH = 12;

async function firstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split('\n')[0]!.replace(/\r$/, '');
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    process.stderr.write(prompt);
    // Nothing typed is echoed: readline writes the line through this one method.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    rl.on('line', (line) => {
      process.stderr.write('\n');
      rl.close();
      resolve(line);
    });
    rl.on('SIGINT', () => {
      rl.close();
      reject(new Error('no passphrase given (interrupted); nothing was done'));
    });
  });
}

export async function readPassphrase(options: { purpose: string; confirm: boolean }): Promise<string> {
  const tty = process.stdin.isTTY === true;
  const passphrase = tty ? await askHidden(`Passphrase for ${options.purpose}: `) : await firstLineOfStdin();
  if (!passphrase) throw new Error(`no passphrase given for ${options.purpose}; nothing was done`);
  if (options.confirm) {
    if (passphrase.length < MIN_PASSPHRASE_LENGTH) throw new Error(`the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters: it guards every key of every relay; nothing was done`);
    if (tty && (await askHidden('The same passphrase again: ')) !== passphrase) throw new Error('the two passphrases differ; nothing was done');
  }
  return passphrase;
}
