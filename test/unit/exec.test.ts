import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isUserError } from '../../builder/errors.ts';
import { CommandFailed, run } from '../../builder/exec.ts';
import { BuildLog } from '../../builder/log.ts';
import { scratch } from '../helpers/env.ts';

describe('run: a failed command', () => {
  it('is a user error with the same message as before, and the build log records where it was run from', async () => {
    const path = join(await scratch('exec'), 'build.log');
    const error = await run('sh', ['-c', 'echo no space left >&2; exit 3'], { log: new BuildLog(path), what: 'write the image' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailed);
    expect(isUserError(error)).toBe(true);
    expect((error as CommandFailed).message).toBe("Could not write the image: `sh -c 'echo no space left >&2; exit 3'` exited with code 3:\nno space left");
    expect((error as CommandFailed).programExitCode).toBe(3);
    expect((error as CommandFailed).exitCode).toBe(1);
    const log = await readFile(path, 'utf8');
    expect(log).toContain("failed: sh -c 'echo no space left >&2; exit 3' (exited with code 3), run from:");
    // The call chain reaches this test file, so a bug's call site is in the log the CLI names.
    expect(log).toMatch(/^\s+at .*exec\.test\.ts/m);
  });

  it('with arguments execa refuses (a bug in our code) is not a user error, so the CLI prints its stack', async () => {
    const error = await run('echo', ['a\0b']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(isUserError(error)).toBe(false);
  });
});
