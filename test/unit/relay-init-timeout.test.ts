import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runAs } from '../../builder/device/servers.ts';
import { scratch } from '../helpers/env.ts';

const me = { uid: process.getuid!(), gid: process.getgid!() };

/** Whether a process still runs (a zombie waiting for its parent to reap it has stopped running). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z/.test(stat);
}

describe('runAs: a relay init that hangs cannot hold first boot forever', () => {
  it('stops it and everything it started after the timeout, with an error that names the command and its output', async () => {
    const pidFile = join(await scratch('init-timeout'), 'pid');
    // Like init, which runs openssl: a child of its own that would outlive a kill of init alone.
    const script = `echo making keys; sleep 60 & echo $! > ${pidFile}; wait`;
    const started = performance.now();
    const error = await runAs(me, '/bin/sh', ['-c', script], {}, 500).catch((e: unknown) => e as Error);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(`/bin/sh -c ${script} did not finish within 1 s and was stopped. Output so far:\nmaking keys`);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    for (let i = 0; i < 50 && (await running(grandchild)); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await running(grandchild)).toBe(false);
  });

  it('a command that finishes in time gives its output; one that fails, its exit code and output', async () => {
    expect(await runAs(me, '/bin/sh', ['-c', 'echo done'], {}, 10_000)).toBe('done\n');
    await expect(runAs(me, '/bin/sh', ['-c', 'echo refused >&2; exit 3'], {}, 10_000)).rejects.toThrow('/bin/sh -c echo refused >&2; exit 3 exited with 3:\nrefused');
  });
});
