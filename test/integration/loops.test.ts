import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { waitForLoopsReleased } from '../../builder/image/loop.ts';
import { isRoot, scratch } from '../helpers/env.ts';

describe.runIf(isRoot)('an image is worked on only once no loop device holds it any more', () => {
  it('waits while a loop device still uses the file (as after a lazy unmount), refuses after the timeout, and goes on once it is gone', { timeout: 60_000 }, async () => {
    const file = join(await scratch('loops'), 'work.img');
    await execa('truncate', ['-s', '8M', file]);
    const device = (await execa('losetup', ['--find', '--show', file])).stdout.trim();
    try {
      await expect(waitForLoopsReleased(file, 'seal', undefined, 2000)).rejects.toThrow(
        new RegExp(`^seal: ${device} still use ${file.replaceAll('/', '\\/')} 2 s after it was unmounted .*refusing to go on`),
      );
      const waiting = waitForLoopsReleased(file, 'seal', undefined, 20_000);
      setTimeout(() => void execa('losetup', ['--detach', device]), 1500);
      await expect(waiting).resolves.toBeUndefined();
    } finally {
      await execa('losetup', ['--detach', device], { reject: false });
    }
  });
});
